package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/sinks"
)

// Delivery is one line of a ledger: a record the sink was handed.
type Delivery struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
}

// ParseLine decodes one line the stdout sink wrote (see sinks.Line). Key
// and value come from the text field or, for bytes that are not UTF-8, the
// base64 one.
func ParseLine(line []byte) (Delivery, error) {
	var l sinks.Line
	if err := json.Unmarshal(line, &l); err != nil {
		return Delivery{}, err
	}
	if l.Topic == "" {
		return Delivery{}, errors.New("no topic")
	}
	d := Delivery{Topic: l.Topic, Partition: l.Partition, Offset: l.Offset}
	field := func(s *string, b64 string) ([]byte, error) {
		switch {
		case s != nil && b64 != "":
			return nil, errors.New("both text and base64")
		case s != nil:
			return []byte(*s), nil
		case b64 != "":
			return base64.StdEncoding.DecodeString(b64)
		}
		return nil, nil
	}
	var err error
	if d.Key, err = field(l.Key, l.KeyB64); err != nil {
		return Delivery{}, fmt.Errorf("key: %w", err)
	}
	if d.Value, err = field(l.Value, l.ValueB64); err != nil {
		return Delivery{}, fmt.Errorf("value: %w", err)
	}
	return d, nil
}

// ReadLedger reads a ledger file. Lines that do not decode are counted in
// bad (a SIGKILL never tears a line: the sink writes each with one write).
func ReadLedger(path string) (ds []Delivery, bad int, err error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, 0, nil
		}
		return nil, 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<16)
	for {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			d, perr := ParseLine(line)
			if perr != nil {
				bad++
			} else {
				ds = append(ds, d)
			}
		}
		if err == io.EOF {
			return ds, bad, nil
		}
		if err != nil {
			return ds, bad, err
		}
	}
}

// countLines counts newlines in the files, cheaply, for progress checks.
func countLines(paths ...string) int {
	n := 0
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err == nil {
			n += bytes.Count(b, []byte{'\n'})
		}
	}
	return n
}

// Phase is one ledger: what one Sluice process delivered.
type Phase struct {
	Name   string
	Ledger string
}

// Check is what the ledger says about one scenario.
type Check struct {
	Acked      int            // records the broker acknowledged to the producer
	InLog      int            // records in the log when verified
	Delivered  int            // distinct records of the log the sink got
	Lost       int            // records in the log (or acknowledged) the sink never got
	Phantom    int            // deliveries of records that are not in the log, or with another value
	Duplicates int            // deliveries beyond the first
	DupByPhase map[string]int // duplicates, by the phase that delivered them again
	BrokerLost int            // acknowledged records missing from the log (the broker's fault)
	Bad        int            // ledger lines that did not decode
	Sample     []string       // a few lost or phantom records, for the report
}

// Verify reads the topic back (the truth), then every phase's ledger in
// order, and compares: every acknowledged record and every record of the log
// must have been delivered; nothing may be delivered that is not in the log
// with that value; deliveries beyond the first are duplicates, charged to
// the phase that made them.
func Verify(ctx context.Context, b Broker, topic string, acked map[PO]string, phases []Phase) (*Check, error) {
	truth, err := readTopic(ctx, b, topic)
	if err != nil {
		return nil, fmt.Errorf("read back %s: %w", topic, err)
	}
	c := &Check{Acked: len(acked), InLog: len(truth), DupByPhase: map[string]int{}}
	sample := func(format string, args ...any) {
		if len(c.Sample) < 5 {
			c.Sample = append(c.Sample, fmt.Sprintf(format, args...))
		}
	}
	for po, v := range acked {
		if tv, ok := truth[po]; !ok || tv != v {
			c.BrokerLost++
			sample("acked %d@%d not in the log", po.Partition, po.Offset)
		}
	}
	seen := make(map[PO]int, len(truth))
	for _, ph := range phases {
		ds, bad, err := ReadLedger(ph.Ledger)
		if err != nil {
			return nil, err
		}
		c.Bad += bad
		for _, d := range ds {
			if d.Topic != topic {
				c.Phantom++
				sample("delivered a record of topic %q", d.Topic)
				continue
			}
			po := PO{d.Partition, d.Offset}
			tv, ok := truth[po]
			if !ok || tv != string(d.Value) {
				c.Phantom++
				sample("delivered %d@%d %q: not in the log", po.Partition, po.Offset, d.Value)
				continue
			}
			seen[po]++
			if seen[po] > 1 {
				c.Duplicates++
				c.DupByPhase[ph.Name]++
			}
		}
	}
	c.Delivered = len(seen)
	missing := map[PO]bool{}
	for po := range truth {
		if seen[po] == 0 {
			missing[po] = true
		}
	}
	for po := range acked {
		if seen[po] == 0 {
			missing[po] = true
		}
	}
	c.Lost = len(missing)
	var ms []PO
	for po := range missing {
		ms = append(ms, po)
	}
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].Partition != ms[j].Partition {
			return ms[i].Partition < ms[j].Partition
		}
		return ms[i].Offset < ms[j].Offset
	})
	for _, po := range ms {
		sample("lost %d@%d", po.Partition, po.Offset)
	}
	return c, nil
}

// readTopic reads every record of topic up to the current end offsets.
func readTopic(ctx context.Context, b Broker, topic string) (map[PO]string, error) {
	cl, err := b.Client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	cl.Close()
	if err != nil {
		return nil, err
	}
	want := map[int32]int64{}
	offs := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			offs[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	out := map[PO]string{}
	if len(want) == 0 {
		return out, nil
	}
	rd, err := b.Client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	for len(want) > 0 {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("timed out with %d partitions not read to the end", len(want))
		}
		fs.EachRecord(func(r *kgo.Record) {
			out[PO{r.Partition, r.Offset}] = string(r.Value)
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return out, nil
}
