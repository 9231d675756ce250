package worker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/types/known/timestamppb"

	api "github.com/shoal-project/shoal/proto"
)

// countingReader reads each task as using 10 ms of CPU per call.
type countingReader struct {
	mu    sync.Mutex
	calls [][]string
	cpu   map[string]uint64
}

func (r *countingReader) Stats(_ context.Context, ids []string) ([]*api.TaskStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, ids)
	var out []*api.TaskStats
	for _, id := range ids {
		r.cpu[id] += 10_000_000
		out = append(out, &api.TaskStats{TaskId: id, Read: timestamppb.Now(), CpuNanos: r.cpu[id]})
	}
	return out, nil
}

// The first request for a task reads it twice (so CPU % can be computed
// from one answer); the next reads once and carries the previous reading.
func TestStatsCarryThePreviousReading(t *testing.T) {
	a := &Agent{cfg: Config{Clock: clockwork.NewRealClock()}}
	r := &countingReader{cpu: map[string]uint64{}}
	ctx := context.Background()
	start := time.Now()
	first, err := a.readStats(ctx, r, []string{"t1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.calls) != 2 || time.Since(start) < statsPreSample {
		t.Fatalf("first request: %d reads in %v, want 2 reads %v apart", len(r.calls), time.Since(start), statsPreSample)
	}
	if s := first[0]; s.GetPreRead() == nil || s.GetCpuNanos()-s.GetPreCpuNanos() != 10_000_000 {
		t.Fatalf("first answer: %v", s)
	}
	second, err := a.readStats(ctx, r, []string{"t1", "t2"})
	if err != nil {
		t.Fatal(err)
	}
	// t2 is new: one pre-read of t2 alone, then both.
	if len(r.calls) != 4 || len(r.calls[2]) != 1 || r.calls[2][0] != "t2" {
		t.Fatalf("reads: %v", r.calls)
	}
	for _, s := range second {
		if s.GetPreRead() == nil || s.GetCpuNanos()-s.GetPreCpuNanos() != 10_000_000 {
			t.Fatalf("second answer: %v", s)
		}
	}
	if _, err := a.readStats(ctx, r, []string{"t1"}); err != nil || len(r.calls) != 5 {
		t.Fatalf("third request: %d reads, %v", len(r.calls), err)
	}
}

// CPU % is taken over at least statsMinWindow when an older reading
// allows it: requests a fraction of a second apart compare against the
// kept reading from before the window, not the last request's (a CPU
// limit is a quota per 100 ms period, so short windows overshoot it).
func TestStatsWindowIsNeverShortWhenAnOlderReadingExists(t *testing.T) {
	var c statsCache
	at := time.Unix(1_800_000_000, 0)
	read := func(ms int, cpu uint64, final bool) *api.TaskStats {
		st := &api.TaskStats{TaskId: "t", Read: timestamppb.New(at.Add(time.Duration(ms) * time.Millisecond)), CpuNanos: cpu}
		c.remember([]*api.TaskStats{st}, final)
		return st
	}
	window := func(st *api.TaskStats) time.Duration {
		return st.GetRead().AsTime().Sub(st.GetPreRead().AsTime())
	}
	read(0, 0, false) // the pre-sample
	if w := window(read(1000, 100, true)); w != time.Second {
		t.Fatalf("first answer over %v, want the pre-sample's 1s", w)
	}
	// Requests every 300 ms: each window reaches back to a reading at
	// least statsMinWindow old.
	for ms := 1300; ms <= 4000; ms += 300 {
		st := read(ms, uint64(ms/10), true)
		if w := window(st); w < statsMinWindow || w > statsMinWindow+time.Second {
			t.Fatalf("request at %d ms: window %v, want %v to %v", ms, w, statsMinWindow, statsMinWindow+time.Second)
		}
		if st.GetCpuNanos() <= st.GetPreCpuNanos() {
			t.Fatalf("request at %d ms: CPU %d after %d", ms, st.GetCpuNanos(), st.GetPreCpuNanos())
		}
	}
}
