package consumer

import (
	"reflect"
	"testing"
	"unsafe"
)

func TestBlockClass(t *testing.T) {
	for _, c := range []struct{ n, class, size int }{
		{16, 0, 16}, {17, 1, 32}, {32, 1, 32}, {33, 2, 64}, {128, 3, 128}, {129, 4, 256}, {256, 4, 256},
	} {
		if got := blockClass(c.n); got != c.class || blockMin<<got != c.size {
			t.Errorf("blockClass(%d) = %d (size %d), want %d (size %d)", c.n, got, blockMin<<got, c.class, c.size)
		}
	}
	if c := blockClass(blockMax); blockMin<<c != blockMax {
		t.Errorf("the largest class holds blocks of %d, want blockMax %d", blockMin<<c, blockMax)
	}
}

// A block goes back to its pool only once every message in it was
// released: until then no newMessages call may hand out its messages again,
// whatever the pool holds.
func TestBlockReusedOnlyWhenAllReleased(t *testing.T) {
	blocks.keepUpTo(1 << 20)
	held := newMessages(20)
	blk := held[0].blk
	if blk == nil || len(held) != 20 {
		t.Fatalf("newMessages(20): %d messages, block %v", len(held), blk)
	}
	for _, m := range held {
		if m.blk != blk {
			t.Fatal("the messages of one newMessages call are in different blocks")
		}
	}
	for i, m := range held {
		m.Offset = int64(i)
		m.Value = []byte("v")
	}
	releaseMessages(held[:19], nil)
	for range 50 {
		other := newMessages(20)
		if other[0].blk == blk {
			t.Fatal("a block was handed out again while one of its messages was still held")
		}
		releaseMessages(other, nil)
	}
	if held[19].Offset != 19 || string(held[19].Value) != "v" {
		t.Fatalf("the held message changed: offset %d, value %q", held[19].Offset, held[19].Value)
	}
	releaseMessages(held[19:], nil)
	if blk.live != 0 {
		t.Fatalf("a block with all its messages released counts %d live", blk.live)
	}
	if again := newMessages(20); again[0].blk != blk {
		t.Fatal("a block whose messages were all released was not reused")
	}
}

func TestSmallPollsGetNoBlock(t *testing.T) {
	for _, m := range newMessages(blockMin - 1) {
		if m.blk != nil {
			t.Fatal("a poll smaller than blockMin got a pooled block")
		}
	}
}

// TestMessageLayout: a Message is 256 bytes, and what the pipeline reads
// of every message around its delivery (every field up to and including
// Attempt) is in one cache line for every message of a block of each size
// (see Message).
func TestMessageLayout(t *testing.T) {
	if s := unsafe.Sizeof(Message{}); s != 256 {
		t.Errorf("Message is %d bytes, want 256", s)
	}
	var hot uintptr // bytes from the start of a Message
	rt := reflect.TypeFor[Message]()
	for i := range rt.NumField() {
		f := rt.Field(i)
		hot = max(hot, f.Offset+f.Type.Size())
		if f.Name == "Attempt" {
			break
		}
	}
	for n := blockMin; n <= blockMax; n *= 2 {
		b := newMessages(n)
		for i, m := range b {
			if at := uintptr(unsafe.Pointer(m)) % 64; at+hot > 64 {
				t.Fatalf("block of %d, message %d: its first %d bytes start %d bytes into a cache line", n, i, hot, at)
			}
		}
	}
}
