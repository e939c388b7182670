package testutil

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them (a
// server's goroutines included).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
