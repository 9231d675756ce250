package raftstore

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// The Ready loop's stalls are counted and said in the log (at most one
// warning per stallWarnEvery), with where a slow Ready's time went.
func TestStallWatch(t *testing.T) {
	var buf bytes.Buffer
	w := newStallWatch(slog.New(slog.NewTextHandler(&buf, nil)), 100*time.Millisecond)
	t0 := time.Unix(1000, 0)
	w.tick(t0)
	w.tick(t0.Add(100 * time.Millisecond))
	w.ready(t0.Add(150*time.Millisecond), readyTimes{start: t0.Add(100 * time.Millisecond)})
	if w.stalls.Load() != 0 || buf.Len() != 0 {
		t.Fatalf("on time: %d stalls, log %q", w.stalls.Load(), buf.String())
	}
	w.tick(t0.Add(800 * time.Millisecond)) // 700ms after the last tick
	if w.stalls.Load() != 1 || !strings.Contains(buf.String(), "ticked late") || !strings.Contains(buf.String(), "gap=700ms") {
		t.Fatalf("late tick: %d stalls, log %q", w.stalls.Load(), buf.String())
	}
	buf.Reset()
	w.ready(t0.Add(2*time.Second), readyTimes{start: t0.Add(time.Second), persist: 900 * time.Millisecond, entries: 3})
	if w.stalls.Load() != 2 || buf.Len() != 0 {
		t.Fatalf("a second stall within %v: %d stalls, log %q", stallWarnEvery, w.stalls.Load(), buf.String())
	}
	w.ready(t0.Add(20*time.Second), readyTimes{start: t0.Add(19 * time.Second), persist: 900 * time.Millisecond, entries: 3})
	if got := buf.String(); w.stalls.Load() != 3 || !strings.Contains(got, "took long") || !strings.Contains(got, "persist=900ms") ||
		!strings.Contains(got, "entries=3") || !strings.Contains(got, "stalls_so_far=3") {
		t.Fatalf("slow Ready: %d stalls, log %q", w.stalls.Load(), got)
	}
}
