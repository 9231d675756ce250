package containerd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	cerrdefs "github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// This file runs health checks: each probe is an exec in the container, and
// a goroutine owned by the controller (the monitor) probes from the start
// of the process until it exits, the task turns unhealthy, or the
// controller stops it (Shutdown, Terminate, Remove, Close).

const (
	// probeCleanup bounds the removal of a probe's exec process.
	probeCleanup = 10 * time.Second
	// probeDrain bounds the wait for a probe's output after it exited (a
	// background child may hold the pipe open).
	probeDrain = time.Second
	// unhealthyKillWait bounds the wait for the exit of a task killed for
	// being unhealthy.
	unhealthyKillWait = 10 * time.Second
)

// monitor is a controller's health check goroutine.
type monitor struct {
	cancel  context.CancelFunc
	done    chan struct{} // closed when the goroutine has returned
	healthy chan struct{} // closed at the first passing probe
	result  monitorResult // written before done is closed
}

type monitorResult struct {
	unhealthy error              // the probes found the task unhealthy and killed it
	exit      *client.ExitStatus // the process's exit, when the monitor saw it
	err       error              // why the monitor stopped otherwise
}

// healthCheck returns the health check recorded at Prepare, nil when the
// task has none.
func (c *controller) healthCheck() (*healthConfig, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hcRead {
		return c.hc, nil
	}
	hc, err := readHealth(c.e.cfg.taskDir(c.id))
	if err != nil {
		return nil, err
	}
	c.hc, c.hcRead = hc, true
	return hc, nil
}

// startMonitor starts probing task's container, whose process started at
// started. It returns nil, nil when the task has no health check, when a
// monitor already runs, or when probing was stopped for good.
func (c *controller) startMonitor(ctx context.Context, task client.Task, started time.Time) (*monitor, error) {
	hc, err := c.healthCheck()
	if err != nil || hc == nil {
		return nil, err
	}
	ctr, err := c.container(ctx)
	if err != nil {
		return nil, err
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		return nil, fmt.Errorf("spec of %s: %w", c.id, err)
	}
	if spec.Process == nil {
		return nil, fmt.Errorf("spec of %s has no process", c.id)
	}
	mctx, cancel := context.WithCancel(c.waitCtx)
	// Subscribed before the goroutine runs, so an exit from now on is seen.
	exitc, err := task.Wait(mctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("wait on %s: %w", c.id, err)
	}
	m := &monitor{cancel: cancel, done: make(chan struct{}), healthy: make(chan struct{})}
	c.mu.Lock()
	if c.healthStopped || c.mon != nil {
		c.mu.Unlock()
		cancel()
		return nil, nil
	}
	c.mon = m
	c.mu.Unlock()
	go c.runMonitor(mctx, m, task, spec.Process, hc, started, exitc)
	return m, nil
}

// stopMonitor stops the health check goroutine and waits for it; forever
// also keeps any from starting again (Shutdown, Terminate, Remove, Close).
func (c *controller) stopMonitor(forever bool) {
	c.mu.Lock()
	m := c.mon
	c.mon = nil
	if forever {
		c.healthStopped = true
	}
	c.mu.Unlock()
	if m != nil {
		m.cancel()
		<-m.done
	}
}

// runMonitor probes until ctx ends, the process exits or the task turns
// unhealthy. Unhealthy, it records the cause for Wait, kills the process
// and waits (a bounded time) for its exit.
func (c *controller) runMonitor(ctx context.Context, m *monitor, task client.Task, proc *specs.Process, hc *healthConfig, started time.Time, exitc <-chan client.ExitStatus) {
	defer close(m.done)
	var tr healthTracker
	timer := time.NewTimer(tr.nextInterval(hc, time.Since(started)))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			m.result.err = ctx.Err()
			return
		case st := <-exitc:
			m.result.exit = &st
			return
		case <-timer.C:
		}
		r := c.probe(ctx, task, proc, hc)
		select {
		case <-ctx.Done():
			m.result.err = ctx.Err()
			return
		case st := <-exitc: // the probe failed because the process is gone
			m.result.exit = &st
			return
		default:
		}
		wasHealthy := tr.healthy
		switch tr.observe(hc, r.OK, r.Start.Sub(started)) {
		case healthHealthy:
			if !wasHealthy {
				close(m.healthy)
			}
		case healthUnhealthy:
			cause := unhealthyError(r)
			c.mu.Lock()
			c.unhealthy = cause
			c.mu.Unlock()
			m.result.unhealthy = cause
			if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !cerrdefs.IsNotFound(err) {
				m.result.err = fmt.Errorf("kill unhealthy %s: %w", c.id, err)
			}
			t := time.NewTimer(unhealthyKillWait)
			defer t.Stop()
			select {
			case st := <-exitc:
				m.result.exit = &st
			case <-ctx.Done():
			case <-t.C:
			}
			return
		}
		timer.Reset(tr.nextInterval(hc, time.Since(started)))
	}
}

// awaitHealthy is the end of Start for a task with a health check: it
// starts the monitor and returns once a probe passes. It fails with the
// unhealthy error (the process killed) when the probes give up, with the
// process's exit when it ends first (nil for exit 0, as moby does), and
// with ctx's error when ctx ends first (the monitor then stops).
func (c *controller) awaitHealthy(ctx context.Context, task client.Task, started time.Time) error {
	m, err := c.startMonitor(ctx, task, started)
	if err != nil {
		_ = task.Kill(c.e.nsctx(context.WithoutCancel(ctx)), syscall.SIGKILL)
		return fmt.Errorf("health check of %s: %w", c.id, err)
	}
	if m == nil {
		return nil
	}
	select {
	case <-m.healthy:
		return nil
	case <-m.done:
	case <-ctx.Done():
		c.stopMonitor(false)
		return ctx.Err()
	}
	select {
	case <-m.healthy:
		return nil // healthy, then exited: Wait reports the exit
	default:
	}
	r := m.result
	var exitErr error
	exited := false
	if r.exit != nil {
		if code, _, err := r.exit.Result(); err == nil {
			exitErr, exited = c.finish(c.exitResult(code)), true
		}
	}
	switch {
	case r.unhealthy != nil:
		return r.unhealthy
	case exited:
		return exitErr
	case r.err != nil:
		return fmt.Errorf("health check of %s stopped: %w", c.id, r.err)
	default:
		return fmt.Errorf("health check of %s stopped", c.id)
	}
}

// resumeHealth starts probing a running process that no monitor watches:
// a controller re-created after a daemon restart, or a Start that was
// interrupted before the first passing probe. The start period counts from
// the started marker's time. It is best effort: a failure leaves the task
// unprobed rather than failing Wait.
func (c *controller) resumeHealth(ctx context.Context) {
	c.mu.Lock()
	skip := c.mon != nil || c.healthStopped
	c.mu.Unlock()
	if skip {
		return
	}
	if hc, err := c.healthCheck(); err != nil || hc == nil {
		return
	}
	task, err := c.loadTask(ctx)
	if err != nil || task == nil {
		return
	}
	if st, err := task.Status(ctx); err != nil || st.Status != client.Running {
		return
	}
	started := time.Now()
	if fi, err := os.Stat(filepath.Join(c.e.cfg.taskDir(c.id), startedMarker)); err == nil {
		started = fi.ModTime()
	}
	_, _ = c.startMonitor(ctx, task, started)
}

// probe runs the health check command once in the container, with the
// user, environment and working directory of its process, and reports the
// outcome. A probe that runs longer than the timeout is killed and fails.
func (c *controller) probe(ctx context.Context, task client.Task, proc *specs.Process, hc *healthConfig) probeResult {
	r := probeResult{Start: time.Now(), ExitCode: -1}
	ps := *proc
	ps.Args = append([]string{}, hc.Args...)
	ps.Terminal, ps.ConsoleSize = false, nil
	out := &boundedBuffer{max: maxProbeOutput}
	p, err := task.Exec(ctx, "health-"+randomID(), &ps, cio.NewCreator(cio.WithStreams(nil, out, out)))
	if err != nil {
		r.Output = "health check: " + err.Error()
		return r
	}
	// The exit subscription and the clean-up outlive ctx (a stopped
	// monitor still removes its exec process) but not the probe.
	wctx, wcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer wcancel()
	cleanup := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeCleanup)
		defer cancel()
		if _, err := p.Delete(cctx, client.WithProcessKill); err != nil {
			// Delete closes the output pipes only when it succeeds.
			p.IO().Cancel()
			_ = p.IO().Close()
		}
	}
	statusc, err := p.Wait(wctx)
	if err == nil {
		err = p.Start(ctx)
	}
	if err != nil {
		cleanup()
		r.Output = "health check: " + err.Error()
		return r
	}
	timer := time.NewTimer(hc.Timeout)
	defer timer.Stop()
	select {
	case st := <-statusc:
		code, _, err := st.Result()
		if err != nil {
			r.Output = "health check: " + err.Error()
			break
		}
		r.ExitCode, r.OK = int(code), code == 0
		drained := make(chan struct{})
		go func() { p.IO().Wait(); close(drained) }()
		select {
		case <-drained:
		case <-time.After(probeDrain):
		}
	case <-timer.C:
		r.Output = fmt.Sprintf("Health check exceeded timeout (%s)", hc.Timeout)
	case <-ctx.Done():
		r.Output = "health check stopped: " + ctx.Err().Error()
	}
	if r.ExitCode < 0 {
		kctx, cancel := context.WithTimeout(wctx, probeCleanup)
		if err := p.Kill(kctx, syscall.SIGKILL); err == nil || cerrdefs.IsNotFound(err) {
			select {
			case <-statusc:
			case <-kctx.Done():
			}
		}
		cancel()
	}
	cleanup() // Delete also ends the output copy, so out is final below
	if r.ExitCode >= 0 {
		r.Output = out.String()
	}
	return r
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
