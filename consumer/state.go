package consumer

import (
	"sort"
	"time"
)

// Stats is a reading of the pipeline for the autoscaler. Counters are
// cumulative since the consumer started.
type Stats struct {
	Workers    int           // pool size
	Busy       int           // workers inside a sink call now
	BusyTime   time.Duration // cumulative worker time inside the sink
	SinkTime   time.Duration // cumulative sink time over Completed
	Depth      int           // admitted, waiting for a worker
	InFlight   int           // inside a worker
	Arrived    uint64        // admitted
	Completed  uint64        // delivered by the sink
	Errors     uint64        // failed delivery attempts
	Lag        int64         // committed position to log end, all assigned partitions
	Partitions int           // assigned partitions
	Pauses     uint64        // partitions paused, cumulative
	Resumes    uint64        // partitions resumed, cumulative
}

// Stats reads the pipeline. It takes the pipeline's lock briefly.
func (c *Consumer) Stats() Stats {
	p := c.pipe
	s := Stats{
		Busy:      int(p.busy.Load()),
		BusyTime:  time.Duration(p.busyNanos.Load()),
		SinkTime:  time.Duration(p.sinkNanos.Load()),
		Arrived:   p.arrived.Load(),
		Completed: p.completed.Load(),
		Errors:    p.errs.Load(),
		Pauses:    c.pauses.Load(),
		Resumes:   c.resumes.Load(),
	}
	p.mu.Lock()
	s.Workers = p.target
	s.Depth = p.queued
	s.InFlight = p.infl
	s.Partitions = len(p.parts)
	for _, part := range p.parts {
		if l := part.lag(); l > 0 {
			s.Lag += l
		}
	}
	p.mu.Unlock()
	return s
}

// FlowState is what /debug/flow shows: the window, the pool, and each
// partition with its pause state and offsets.
type FlowState struct {
	Window     WindowState      `json:"window"`
	Workers    int              `json:"workers"`
	Busy       int              `json:"busy_workers"`
	Queued     int              `json:"queued_records"`
	InFlight   int              `json:"in_flight_records"`
	Paused     int              `json:"paused_partitions"`
	Partitions []PartitionState `json:"partitions"`
}

// WindowState is the window's budget and fill.
type WindowState struct {
	Records     int64   `json:"records"`
	Bytes       int64   `json:"bytes"`
	MaxRecords  int64   `json:"max_records"`
	MaxBytes    int64   `json:"max_bytes"`
	HighWater   float64 `json:"high_water"`
	LowWater    float64 `json:"low_water"`
	Fill        float64 `json:"fill"`
	PeakRecords int64   `json:"peak_records"`
	PeakBytes   int64   `json:"peak_bytes"`
}

// PartitionState is one assigned partition.
type PartitionState struct {
	Topic       string     `json:"topic"`
	Partition   int32      `json:"partition"`
	Paused      bool       `json:"paused"`
	PauseReason string     `json:"pause_reason,omitempty"`
	PausedSince *time.Time `json:"paused_since,omitempty"`
	// Fetched is the offset after the last admitted record; Done the offset
	// after the contiguous delivered prefix; Committed the last committed
	// offset (-1: none yet); HighWatermark the log end (-1: unknown).
	Fetched       int64 `json:"fetched_offset"`
	Done          int64 `json:"done_offset"`
	Committed     int64 `json:"committed_offset"`
	HighWatermark int64 `json:"high_watermark"`
	Lag           int64 `json:"lag"`
	HeldRecords   int64 `json:"held_records"`
	HeldBytes     int64 `json:"held_bytes"`
	Queued        int   `json:"queued_records"`
	InFlight      int   `json:"in_flight_records"`
}

// FlowState reads the flow state for the debug endpoint.
func (c *Consumer) FlowState() FlowState {
	w := c.win
	fs := FlowState{Window: WindowState{
		Records: w.Records(), Bytes: w.Bytes(), MaxRecords: w.MaxRecords(), MaxBytes: w.MaxBytes(),
		HighWater: w.high, LowWater: w.low, Fill: round2(w.Fill()),
		PeakRecords: w.PeakRecords(), PeakBytes: w.PeakBytes(),
	}}
	p := c.pipe
	fs.Busy = int(p.busy.Load())
	p.mu.Lock()
	fs.Workers = p.target
	fs.Queued = p.queued
	fs.InFlight = p.infl
	for _, part := range p.parts {
		ps := PartitionState{
			Topic: part.topic, Partition: part.partition,
			Paused: part.paused, PauseReason: part.pauseReason,
			Fetched: part.fetched, Done: part.doneOffset, Committed: part.committed,
			HighWatermark: part.hwm, Lag: part.lag(),
			HeldRecords: part.heldRecords, HeldBytes: part.heldBytes,
			Queued: part.queued, InFlight: part.inflight,
		}
		if part.paused {
			t := part.pausedAt
			ps.PausedSince = &t
			fs.Paused++
		}
		fs.Partitions = append(fs.Partitions, ps)
	}
	p.mu.Unlock()
	sort.Slice(fs.Partitions, func(i, j int) bool {
		a, b := fs.Partitions[i], fs.Partitions[j]
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		return a.Partition < b.Partition
	})
	return fs
}
