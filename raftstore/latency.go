package raftstore

import (
	"sync/atomic"
	"time"
)

// latencyBounds are the upper bounds of a Histogram's buckets.
var latencyBounds = []time.Duration{
	250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond,
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second,
	2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// Histogram counts durations in fixed buckets (latencyBounds) without
// locks, for metrics: the package exports no metrics itself, its users
// read snapshots. Safe for concurrent use.
type Histogram struct {
	counts [16]atomic.Uint64 // per bucket; the last is above every bound
	sum    atomic.Int64      // nanoseconds
}

// Observe counts one duration.
func (h *Histogram) Observe(d time.Duration) {
	i := 0
	for i < len(latencyBounds) && d > latencyBounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// HistogramSnapshot is a Histogram's state: Buckets maps each upper bound
// in seconds to the cumulative count at or below it.
type HistogramSnapshot struct {
	Count   uint64
	Sum     time.Duration
	Buckets map[float64]uint64
}

// Snapshot reads the histogram (each count atomically; the set of counts
// may straddle an Observe).
func (h *Histogram) Snapshot() HistogramSnapshot {
	s := HistogramSnapshot{Buckets: make(map[float64]uint64, len(latencyBounds)), Sum: time.Duration(h.sum.Load())}
	for i, b := range latencyBounds {
		s.Count += h.counts[i].Load()
		s.Buckets[b.Seconds()] = s.Count
	}
	s.Count += h.counts[len(latencyBounds)].Load()
	return s
}

// Stats are a member's figures for metrics.
type Stats struct {
	// CommitIndex is the highest index this member knows committed.
	CommitIndex uint64
	// Proposals: from Propose to the entry applied here (the leader's
	// proposals; failed ones are not counted).
	Proposals HistogramSnapshot
	// Snapshots: encoding and saving each snapshot this member took.
	Snapshots HistogramSnapshot
	// SnapshotBytes is the size of the last snapshot taken (0: none yet).
	SnapshotBytes uint64
}

// Stats reads the member's figures.
func (n *Node) Stats() Stats {
	st := Stats{Proposals: n.proposeLatency.Snapshot(), Snapshots: n.snapLatency.Snapshot(), SnapshotBytes: n.lastSnapBytes.Load()}
	select {
	case <-n.started:
		if n.fault.Load() == nil {
			st.CommitIndex = n.raft.Status().Commit
		}
	default:
	}
	return st
}
