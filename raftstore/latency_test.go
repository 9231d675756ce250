package raftstore

import (
	"testing"
	"time"
)

func TestHistogram(t *testing.T) {
	var h Histogram
	for _, d := range []time.Duration{100 * time.Microsecond, 250 * time.Microsecond, 3 * time.Millisecond, time.Minute} {
		h.Observe(d)
	}
	s := h.Snapshot()
	if s.Count != 4 || s.Sum != time.Minute+3350*time.Microsecond {
		t.Fatalf("count %d sum %v", s.Count, s.Sum)
	}
	for bound, want := range map[float64]uint64{0.00025: 2, 0.0025: 2, 0.005: 3, 10: 3} {
		if s.Buckets[bound] != want {
			t.Errorf("bucket %v: %d, want %d", bound, s.Buckets[bound], want)
		}
	}
}
