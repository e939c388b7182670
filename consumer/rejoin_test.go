package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/consumer"
)

// A member that dies between its JoinGroup and the join's answer stays in
// the group without a session until the coordinator gives up on it, and
// every member holds still meanwhile: kfake gives up only at the rebalance
// timeout the members sent. The adversarial checker's kfake seed 25 stalled
// for 60 s this way, franz-go's default, while Sluice's longest revoke needs
// a fraction of that. A member now sends Config.GroupRebalanceTimeout, and a
// member joining after such a death is given its partition within it.
func TestAMemberThatDiesWhileJoiningHoldsTheGroupNoLongerThanTheRebalanceTimeout(t *testing.T) {
	fc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "dies"))
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	brokers := fc.ListenAddrs()
	produceTo(t, brokers, "dies", 400, keyed)

	cfg := baseConfig(brokers, "dies", "g-dies")
	cfg.RebalanceTimeout = 500 * time.Millisecond
	cfg.CommitTimeout = 2 * time.Second
	// A session longer than the group rebalance timeout (4.5 s here), as
	// it is by default (45 s and 22 s): kfake, unlike Kafka, expires the
	// session of a member that waits in JoinGroup, and drops its join.
	cfg.Kafka.SessionTimeout = 10 * time.Second
	slow := func(*consumer.Message) error { time.Sleep(20 * time.Millisecond); return nil }
	first := newProbe(slow)
	stopFirst := run(t, newMember(t, cfg, "first", first))
	defer stopFirst()
	waitUntil(t, time.Minute, "the first member to deliver", func() bool { return first.delivered() > 0 })

	// The member that dies: a bare client that joins by hand (announcing a
	// short rebalance timeout of its own, so that the group's wait is the
	// members'), and whose connection closes once the coordinator has its
	// second JoinGroup, before the answer.
	received := make(chan struct{}, 1)
	fc.ControlKey(kmsg.JoinGroup.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		fc.KeepControl()
		if j := req.(*kmsg.JoinGroupRequest); j.MemberID != "" && j.RebalanceTimeoutMillis == 1000 {
			select {
			case received <- struct{}{}:
			default:
			}
		}
		return nil, nil, false
	})
	dying, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer dying.Close()
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 1
	meta.Topics = []string{"dies"}
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group = "g-dies"
	join.SessionTimeoutMillis = 6000
	join.RebalanceTimeoutMillis = 1000
	join.ProtocolType = "consumer"
	proto := kmsg.NewJoinGroupRequestProtocol()
	proto.Name = "cooperative-sticky"
	proto.Metadata = meta.AppendTo(nil)
	join.Protocols = append(join.Protocols, proto)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	resp, err := join.RequestWith(ctx, dying)
	cancel()
	if err != nil {
		t.Fatalf("first JoinGroup: %v", err)
	}
	if resp.ErrorCode != kerr.MemberIDRequired.Code {
		t.Fatalf("first JoinGroup: error code %d, want MEMBER_ID_REQUIRED", resp.ErrorCode)
	}
	join.MemberID = resp.MemberID
	ctx, cancel = context.WithCancel(context.Background())
	go func() { _, _ = join.RequestWith(ctx, dying) }()
	select {
	case <-received:
	case <-time.After(10 * time.Second):
		t.Fatal("the coordinator never saw the dying member's second JoinGroup")
	}
	cancel() // franz-go closes the connection of a request it gives up on
	dying.Close()

	// A member joining now waits for the group to give up on the dead one.
	second := newProbe(slow)
	joined := time.Now()
	stopSecond := run(t, newMember(t, cfg, "second", second))
	defer stopSecond()
	waitUntil(t, cfg.GroupRebalanceTimeout()+10*time.Second,
		"the member that joined after the dead one to deliver (within the group rebalance timeout and 10 s)",
		func() bool { return second.delivered() > 0 })
	t.Logf("the second member delivered %s after it started (group rebalance timeout %s)",
		time.Since(joined).Round(100*time.Millisecond), cfg.GroupRebalanceTimeout())
}
