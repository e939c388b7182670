package consumer

import "testing"

func TestParseAckSubject(t *testing.T) {
	for _, tc := range []struct {
		reply string
		want  ackMeta
		ok    bool
	}{
		{"$JS.ACK.ORDERS.sluice.3.1042.1040.1700000000123456789.17",
			ackMeta{delivered: 3, streamSeq: 1042, timestamp: 1700000000123456789}, true},
		{"$JS.ACK._.ACCHASH.ORDERS.sluice.1.7.7.1700000000000000001.0.rnd",
			ackMeta{delivered: 1, streamSeq: 7, timestamp: 1700000000000000001}, true},
		{"$JS.ACK.hub.ACCHASH.ORDERS.sluice.2.9.8.1700000000000000002.5",
			ackMeta{delivered: 2, streamSeq: 9, timestamp: 1700000000000000002}, true},
		{"$JS.ACK.ORDERS.sluice.x.1.1.1.1", ackMeta{}, false},
		{"$JS.ACK.ORDERS.sluice.1.1", ackMeta{}, false},
		{"$JS.ACK.a.b.c.d.e.f.g.h", ackMeta{}, false}, // 8 fields: neither layout
		{"_INBOX.abc", ackMeta{}, false},
		{"", ackMeta{}, false},
	} {
		got, ok := parseAckSubject(tc.reply)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseAckSubject(%q) = %+v, %v; want %+v, %v", tc.reply, got, ok, tc.want, tc.ok)
		}
	}
}

func TestHeldListKeepsTouchOrder(t *testing.T) {
	var l heldList
	l.init()
	hs := make([]jsHandle, 4)
	l.add(hs[:2], 10)
	l.add(hs[2:], 20)
	if due := l.due(15, 30, nil); len(due) != 2 || l.len() != 4 {
		t.Fatalf("due at 15: %d of %d, want the 2 touched at 10", len(due), l.len())
	}
	// The two just touched went to the back: now 2,3 (20) come first.
	if due := l.due(25, 40, nil); len(due) != 2 {
		t.Fatalf("due at 25: %d, want 2", len(due))
	}
	l.remove([]*Message{{ack: &hs[0]}, {ack: &hs[3]}})
	l.remove([]*Message{{ack: &hs[0]}}) // twice: no effect
	if l.len() != 2 {
		t.Fatalf("len %d after removing 2, want 2", l.len())
	}
	if all := l.takeAll(); len(all) != 2 || l.len() != 0 {
		t.Fatalf("takeAll %d, left %d", len(all), l.len())
	}
}
