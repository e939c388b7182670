package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestCheckShareUnsettled: the checker's last share-group invariant can
// fail. On kfake, a share group that has acknowledged some of a topic's
// records is reported with the rest as lag; once a member accepted them
// all, nothing is reported.
func TestCheckShareUnsettled(t *testing.T) {
	b, err := NewFake(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	src := &kafkaCheckSource{b: b, share: true, topic: "unsettled"}
	if err := createTopic(ctx, b, src.topic, 2); err != nil {
		t.Fatal(err)
	}
	if err := alterConfigs(ctx, b, kmsg.ConfigResourceTypeGroupConfig, src.group(), "share.auto.offset.reset", "earliest"); err != nil {
		t.Fatal(err)
	}
	prod, err := b.Client(kgo.DefaultProduceTopic(src.topic))
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n {
		if err := prod.ProduceSync(ctx, &kgo.Record{Key: []byte{byte(i)}, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	prod.Close()

	// consume polls until it has want records, accepts the first accept of
	// them, and leaves (releasing the others).
	consume := func(want, accept int) {
		t.Helper()
		cl, err := b.Client(kgo.ShareGroup(src.group()), kgo.ConsumeTopics(src.topic), kgo.FetchMaxWait(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		var got []*kgo.Record
		for len(got) < want && ctx.Err() == nil {
			got = append(got, cl.PollRecords(ctx, want-len(got)).Records()...)
		}
		if len(got) < want {
			t.Fatalf("polled %d of %d records", len(got), want)
		}
		for i, r := range got {
			if i < accept {
				r.Ack(kgo.AckAccept)
			} else {
				r.Ack(kgo.AckRelease)
			}
		}
		if err := cl.FlushAcks(ctx); err != nil {
			t.Fatal(err)
		}
		if err := cl.LeaveGroupContext(ctx); err != nil {
			t.Fatal(err)
		}
	}
	consume(n, n/2)
	adm := kadm.NewClient(mustClient(t, b))
	left, err := src.shareLeft(ctx, adm)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("unsettled: %s", left)
	if !strings.Contains(left, ": lag ") {
		t.Fatalf("with %d of %d records accepted, unsettled reports %q; want the lag", n/2, n, left)
	}
	consume(n/2, n/2)
	if left, err := src.unsettled(ctx, 20*time.Second); err != nil || left != "" {
		t.Fatalf("with every record accepted, unsettled reports %q, %v; want nothing", left, err)
	}
}

func mustClient(t *testing.T, b Broker) *kgo.Client {
	t.Helper()
	cl, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
