package batch

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestCut(t *testing.T) {
	sizes := []int{10, 10, 10, 100, 10, 500, 10}
	id := func(n int) int { return n }
	got := Cut(sizes, id, 3, 200)
	want := [][]int{{10, 10, 10}, {100, 10}, {500}, {10}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("batch %d: got %v, want %v", i, got[i], want[i])
		}
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("batch %d: got %v, want %v", i, got[i], want[i])
			}
		}
	}
	if got := Cut([]int{}, id, 3, 200); len(got) != 0 {
		t.Errorf("empty input: %v", got)
	}
}

func TestInFlightBoundsAndSettlesEverything(t *testing.T) {
	const limit, writes = 3, 50
	var running, peak atomic.Int32
	settled := map[int]bool{}
	p := NewInFlight(limit, func(r int) { settled[r] = true }) // the caller's goroutine only: -race checks
	for i := range writes {
		p.Go(func() int {
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(time.Millisecond)
			running.Add(-1)
			return i
		})
	}
	p.Wait()
	if len(settled) != writes {
		t.Fatalf("%d of %d writes settled", len(settled), writes)
	}
	if got := peak.Load(); got > limit {
		t.Fatalf("%d writes ran at once, limit %d", got, limit)
	}
}

// Serve: calls sent while Go or Wait wait for a write run on the caller's
// goroutine, before the write finishes.
func TestInFlightServesCallsWhileWaiting(t *testing.T) {
	calls := make(chan func())
	release := make(chan struct{})
	var settled []int
	p := NewInFlight(1, func(r int) { settled = append(settled, r) }).Serve(calls)
	p.Go(func() int { <-release; return 1 })
	served := make(chan bool, 1)
	go func() {
		ran := false
		calls <- func() { ran = len(settled) == 0 } // before the write settles
		calls <- func() {}                          // the first one has run
		served <- ran
		close(release)
	}()
	p.Wait()
	if ok := <-served; !ok || len(settled) != 1 {
		t.Fatalf("call served before the write settled: %v; settled %v", ok, settled)
	}
}
