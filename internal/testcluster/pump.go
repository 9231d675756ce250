package testcluster

import (
	"context"
	"fmt"
	"runtime/metrics"
	"strings"
	"time"
)

// The pump moves the fake clock. It advances it by one step (Options.Tick)
// whenever the cluster is quiet: for quietPolls polls in a row no byte
// moved on any gRPC connection, no raft entry was applied, no fake
// container changed, and no goroutine of the process was runnable (the
// Go scheduler's own count, from runtime/metrics) besides the pump. A
// cluster that stays busy still gets a step every maxBusy of wall time, so
// that time cannot stall behind a goroutine that never rests. Cluster time
// thus runs far faster than wall time while nothing happens, and nearly
// stops while the nodes work (on a loaded machine too), so that timeouts
// in cluster time (elections, heartbeats, node-down) are not missed for
// want of CPU.
const (
	pollEvery  = 200 * time.Microsecond
	quietPolls = 2
	maxBusy    = 100 * time.Millisecond
)

// schedSamples are the Go scheduler's counts the pump reads.
var schedSamples = []metrics.Sample{
	{Name: "/sched/goroutines/runnable:goroutines"},
	{Name: "/sched/goroutines/running:goroutines"},
}

// busyGoroutines is how many goroutines run or wait for a CPU, the
// caller's own excluded.
func busyGoroutines(s []metrics.Sample) uint64 {
	metrics.Read(s)
	var n uint64
	for _, x := range s {
		if x.Value.Kind() == metrics.KindUint64 {
			n += x.Value.Uint64()
		}
	}
	if n > 0 {
		n-- // the pump itself
	}
	return n
}

func (c *Cluster) startPump() {
	ctx, cancel := context.WithCancel(context.Background())
	c.pumpStop, c.pumpDone = cancel, make(chan struct{})
	if c.fake == nil { // the real clock moves on its own
		close(c.pumpDone)
		return
	}
	go func() {
		defer close(c.pumpDone)
		c.pump(ctx)
	}()
}

func (c *Cluster) pump(ctx context.Context) {
	ticker := time.NewTicker(pollEvery)
	defer ticker.Stop()
	samples := append([]metrics.Sample(nil), schedSamples...)
	last, quiet, lastStep := c.activity(), 0, time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		a := c.activity()
		if a != last || busyGoroutines(samples) > 0 {
			last, quiet = a, 0
			if time.Since(lastStep) < maxBusy {
				continue
			}
		} else if quiet++; quiet < quietPolls {
			continue
		}
		c.Step()
		last, quiet, lastStep = c.activity(), 0, time.Now()
	}
}

// Step advances the cluster's clock by one tick and wakes the waits (a
// no-op with Options.WallClock).
func (c *Cluster) Step() {
	if c.fake == nil {
		return
	}
	c.fake.Advance(c.opts.Tick)
	c.steps.Add(1)
	c.stepMu.Lock()
	close(c.stepCh)
	c.stepCh = make(chan struct{})
	c.stepMu.Unlock()
}

// Steps is how many steps the clock has made.
func (c *Cluster) Steps() int64 { return c.steps.Load() }

// activity is a number that changes whenever the cluster does something.
func (c *Cluster) activity() int64 {
	sum := c.net.bytes.Load()
	c.mu.Lock()
	managers, agents := c.managers, c.agents
	c.mu.Unlock()
	for _, m := range managers {
		if mgr := m.Manager(); mgr != nil {
			sum += int64(mgr.Raft().AppliedIndex())
		}
	}
	for _, a := range agents {
		n := a.Exec.Counts()
		sum += n.Prepares + n.Starts + n.Stops + n.Removes
	}
	return sum
}

// nextStep returns a channel closed at the next step.
func (c *Cluster) nextStep() <-chan struct{} {
	c.stepMu.Lock()
	defer c.stepMu.Unlock()
	return c.stepCh
}

// WaitFor polls cond, after every step of the clock, until it returns nil,
// and fails the test when within of cluster time (or Options.WallLimit of
// wall time) has passed first, with cond's last error.
func (c *Cluster) WaitFor(what string, within time.Duration, cond func() error) {
	c.tb.Helper()
	if err := c.Await(within, cond); err != nil {
		c.tb.Fatalf("waiting for %s: %v", what, err)
	}
}

// Await is WaitFor returning the failure instead of failing the test.
func (c *Cluster) Await(within time.Duration, cond func() error) error {
	start, wallDeadline := c.clock.Now(), time.Now().Add(c.opts.WallLimit)
	for {
		step := c.nextStep()
		if err := c.Crashed(); err != nil {
			return err
		}
		err := cond()
		if err == nil {
			return nil
		}
		if spent := c.clock.Since(start); spent > within {
			return fmt.Errorf("not within %v of cluster time: %w", within, err)
		}
		if time.Now().After(wallDeadline) {
			return fmt.Errorf("not within %v of wall time (%v of cluster time passed): %w", c.opts.WallLimit, c.clock.Since(start), err)
		}
		select {
		case <-step:
		case <-time.After(10 * time.Millisecond): // a frozen pump must not hang the wait
		}
	}
}

// Hold checks that cond stays nil for d of cluster time, polling after
// every step; it fails the test at the first error.
func (c *Cluster) Hold(what string, d time.Duration, cond func() error) {
	c.tb.Helper()
	start, wallDeadline := c.clock.Now(), time.Now().Add(c.opts.WallLimit)
	for c.clock.Since(start) < d {
		step := c.nextStep()
		if err := c.Crashed(); err != nil {
			c.tb.Fatalf("%s: %v", what, err)
		}
		if err := cond(); err != nil {
			c.tb.Fatalf("%s stopped holding after %v: %v", what, c.clock.Since(start), err)
		}
		if time.Now().After(wallDeadline) {
			c.tb.Fatalf("%s: %v of cluster time did not pass within %v of wall time", what, d, c.opts.WallLimit)
		}
		select {
		case <-step:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// errs joins non-empty problems into one error, nil when there are none.
func errs(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(problems, "; "))
}
