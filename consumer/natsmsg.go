// This file holds the message helpers JetStream and core NATS share: NATS
// headers onto a Message, the ordering key of a NATS message, and reading
// a JetStream ack subject without allocating.

package consumer

import (
	"slices"
	"strings"
	"unsafe"

	"github.com/nats-io/nats.go"
)

// setHeaders copies NATS headers onto m, sorted by name (a NATS header is a
// map: it has no order), and returns their size in bytes.
func setHeaders(m *Message, h nats.Header) int64 {
	if len(h) == 0 {
		return 0
	}
	keys := make([]string, 0, len(h))
	n := 0
	for k, vs := range h {
		keys = append(keys, k)
		n += len(vs)
	}
	slices.Sort(keys)
	m.Headers = make([]Header, 0, n)
	var size int64
	for _, k := range keys {
		for _, v := range h[k] {
			m.Headers = append(m.Headers, Header{Key: k, Value: []byte(v)})
			size += int64(len(k) + len(v))
		}
	}
	return size
}

// natsKey is a NATS message's ordering key: the subject, or the value of
// keyHeader when it is set (none when the message lacks the header). The
// subject's bytes are shared, not copied: Message.Key is read-only.
func natsKey(m *Message, keyHeader string) []byte {
	if keyHeader == "" {
		return unsafe.Slice(unsafe.StringData(m.Topic), len(m.Topic))
	}
	for _, h := range m.Headers {
		if h.Key == keyHeader {
			return h.Value
		}
	}
	return nil
}

// ackMeta is what a JetStream ack subject says about a delivery.
type ackMeta struct {
	delivered uint64 // deliveries of this message so far, this one included
	streamSeq uint64
	timestamp int64 // when the stream stored it, Unix ns
}

// parseAckSubject reads an ack subject without allocating (the jetstream
// package's Metadata allocates; this runs once per message). The layouts:
//
//	v1: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>
//	v2: $JS.ACK.<domain>.<acc hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>[.<token>...]
//
// Stream and consumer names cannot contain dots, so the fields are found by
// position. It reports false for anything else (the caller falls back to
// Metadata).
func parseAckSubject(reply string) (ackMeta, bool) {
	rest, ok := strings.CutPrefix(reply, "$JS.ACK.")
	if !ok {
		return ackMeta{}, false
	}
	var tok [12]string
	n := 0
	for n < len(tok) {
		var t string
		t, rest, ok = strings.Cut(rest, ".")
		tok[n] = t
		n++
		if !ok {
			break
		}
	}
	// Fields counted after "$JS.ACK.": v1 has 7, v2 at least 9.
	first := 0 // index of <delivered>
	switch {
	case n == 7:
		first = 2
	case n >= 9:
		first = 4
	default:
		return ackMeta{}, false
	}
	num := func(s string) (uint64, bool) {
		if s == "" {
			return 0, false
		}
		var v uint64
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + uint64(c-'0')
		}
		return v, true
	}
	d, ok1 := num(tok[first])
	seq, ok2 := num(tok[first+1])
	tm, ok3 := num(tok[first+3])
	if !ok1 || !ok2 || !ok3 {
		return ackMeta{}, false
	}
	return ackMeta{delivered: d, streamSeq: seq, timestamp: int64(tm)}, true
}
