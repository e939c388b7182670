package testutil

import (
	"fmt"
	"net"
	"sync"
	"testing"
)

func TestSyncBufferConcurrentWriteAndRead(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for range 100 {
				fmt.Fprintf(&b, "%d", i)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := len(b.Bytes()); n != 400 {
		t.Fatalf("%d bytes written, want 400", n)
	}
}

func TestFreeAddrCanBeListenedOn(t *testing.T) {
	ln, err := net.Listen("tcp", FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}

// FreePort never hands out a port twice in one process, though the kernel
// gives a just-closed port out again.
func TestFreePortIsUniqueInTheProcess(t *testing.T) {
	seen := map[int]bool{}
	for range 300 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}
