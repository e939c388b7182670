package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: every
// goroutine has an owner that waits for it, the tests' own included.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
