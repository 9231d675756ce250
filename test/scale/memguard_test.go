package scale

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// memGuard keeps a run from taking the machine's last memory (it has no
// swap: the kernel's OOM killer would pick a process, perhaps not this
// one). Once MemAvailable falls under min it marks the run low, which
// the scenario's waits turn into a test failure with the report; if it
// falls under min/2, or stays under min for 30 s (the test goroutine is
// stuck in a call), it prints the report so far and exits the process.
type memGuard struct {
	min    uint64 // bytes
	low    atomic.Pointer[string]
	lowest atomic.Uint64 // the least MemAvailable seen, bytes
	stop   chan struct{}
	wg     sync.WaitGroup
}

// guardMemory starts the guard (SHOAL_SCALE_MIN_AVAILABLE MiB, default
// 2048); it stops with the test.
func (s *scenario) guardMemory() {
	g := &memGuard{min: uint64(envInt(s.t, "SHOAL_SCALE_MIN_AVAILABLE", 2048)) << 20, stop: make(chan struct{})}
	g.lowest.Store(^uint64(0))
	s.mem = g
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.run(s.r)
	}()
	s.t.Cleanup(func() {
		close(g.stop)
		g.wg.Wait()
	})
}

func (g *memGuard) run(r *report) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var lowSince time.Time
	for {
		select {
		case <-g.stop:
			return
		case <-tick.C:
		}
		avail, ok := memAvailable()
		if !ok {
			continue
		}
		if avail < g.lowest.Load() {
			g.lowest.Store(avail)
		}
		if avail >= g.min {
			continue
		}
		msg := fmt.Sprintf("available memory %d MiB, under the guard's %d MiB (SHOAL_SCALE_MIN_AVAILABLE)", avail>>20, g.min>>20)
		if lowSince.IsZero() {
			lowSince = time.Now()
			g.low.Store(&msg)
		}
		if avail < g.min/2 || time.Since(lowSince) > 30*time.Second {
			fmt.Fprintf(os.Stderr, "scale: %s for %v: stopping the process\n%s\n", msg, time.Since(lowSince).Round(time.Second), r.text())
			os.Exit(3)
		}
	}
}

// check returns why the run must stop, "" while memory suffices.
func (g *memGuard) check() string {
	if g == nil {
		return ""
	}
	if p := g.low.Load(); p != nil {
		return *p
	}
	return ""
}

// memAvailable reads MemAvailable from /proc/meminfo.
func memAvailable() (uint64, bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}
