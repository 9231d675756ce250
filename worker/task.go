package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// errInterrupted reports a controller call cut short because the task is no
// longer wanted running or the agent stops: not a failure of the task.
var errInterrupted = errors.New("interrupted")

// taskRunner drives one task through its lifecycle, in one goroutine (run)
// that makes every Controller call, so a controller is never used
// concurrently. Others only change the assignment (update, remove) and
// read what was reported.
type taskRunner struct {
	a    *Agent
	id   string
	log  *slog.Logger
	wake chan struct{} // cap 1: the assignment changed

	mu      sync.Mutex
	task    *api.Task       // latest assignment; replaced, never mutated
	removed bool            // no longer assigned: tear down and forget
	last    *api.TaskStatus // last status reported; never moves backward
	// acceptedAt is when this runner reported ACCEPTED (zero for a task
	// resumed past it): the start of shoal_agent_task_start_seconds.
	acceptedAt time.Time

	// Owned by the run goroutine.
	ctlr     Controller
	ctlrErr  error
	stopped  bool          // shut down for a desired state ≥ SHUTDOWN
	tornDown bool          // container removed for desired REMOVE
	endpoint *api.Endpoint // the endpoint the controller last got
}

func newTaskRunner(a *Agent, t *api.Task, last *api.TaskStatus) *taskRunner {
	if last == nil {
		last = &api.TaskStatus{State: api.TaskState_NEW}
	}
	return &taskRunner{
		a: a, id: t.GetId(), log: a.log.With("task", t.GetId()),
		wake: make(chan struct{}, 1), task: t, last: last,
	}
}

func (r *taskRunner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// update gives the runner a new version of its assignment.
func (r *taskRunner) update(t *api.Task) {
	r.mu.Lock()
	r.task = t
	r.mu.Unlock()
	r.poke()
}

// remove tells the runner its task is no longer assigned.
func (r *taskRunner) remove() {
	r.mu.Lock()
	r.removed = true
	r.mu.Unlock()
	r.poke()
}

func (r *taskRunner) isRemoved() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.removed
}

func (r *taskRunner) currentTask() *api.Task {
	r.mu.Lock()
	defer r.mu.Unlock()
	return proto.Clone(r.task).(*api.Task)
}

// lastStatus returns the last status reported; callers must not modify it.
func (r *taskRunner) lastStatus() *api.TaskStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

func (r *taskRunner) snapshot() (*api.Task, bool, *api.TaskStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.task, r.removed, r.last
}

// unwanted tells whether the task must stop what it is doing.
func (r *taskRunner) unwanted() bool {
	t, removed, _ := r.snapshot()
	return removed || t.GetDesiredState() >= api.TaskState_SHUTDOWN
}

// run is the task's goroutine. It returns when the task has been removed
// and forgotten, or when ctx ends (the agent stops; the container stays).
func (r *taskRunner) run(ctx context.Context) {
	defer func() {
		if r.ctlr != nil {
			if err := r.ctlr.Close(); err != nil {
				r.log.Warn("closing the controller", "err", err)
			}
		}
	}()
	for ctx.Err() == nil {
		t, removed, last := r.snapshot()
		switch {
		case removed:
			if r.teardown(ctx, t, last, false) {
				r.a.forget(r)
			}
			return
		case t.GetDesiredState() >= api.TaskState_REMOVE:
			// Still assigned: removed once, then held until unassigned.
			if !r.tornDown {
				if !r.teardown(ctx, t, last, true) {
					return
				}
				r.tornDown = true
			}
			if !r.idle(ctx) {
				return
			}
		default:
			if !r.step(ctx, t, last) && !r.idle(ctx) {
				return
			}
		}
	}
}

// idle waits for the assignment to change; false if ctx ended.
func (r *taskRunner) idle(ctx context.Context) bool {
	select {
	case <-r.wake:
		return true
	case <-ctx.Done():
		return false
	}
}

// step takes the task one state forward. It returns false when there is
// nothing to do until the assignment changes. Every true return has
// reported a higher state or was interrupted by a change, so the loop never
// spins.
func (r *taskRunner) step(ctx context.Context, t *api.Task, last *api.TaskStatus) bool {
	desired, state := t.GetDesiredState(), last.GetState()
	if desired >= api.TaskState_SHUTDOWN {
		r.stop(ctx, t, last)
		return false
	}
	if state >= api.TaskState_COMPLETE {
		return false // finished: held until shut down or removed
	}
	c, err := r.controller(t)
	if err != nil {
		r.fail(err, nil)
		return true
	}
	r.updateEndpoint(t)
	switch state {
	case api.TaskState_ACCEPTED:
		r.report(api.TaskState_PREPARING, "preparing", "", nil)
	case api.TaskState_PREPARING:
		r.prepare(ctx, c)
	case api.TaskState_READY:
		if desired <= api.TaskState_READY {
			return false // held prepared, e.g. by a stop-first update
		}
		r.report(api.TaskState_STARTING, "starting", "", nil)
	case api.TaskState_STARTING:
		r.start(ctx, c)
	case api.TaskState_RUNNING:
		r.wait(ctx, c)
	default:
		if state >= api.TaskState_ACCEPTED {
			return false // no state between the named ones exists yet
		}
		r.report(api.TaskState_ACCEPTED, "accepted", "", nil)
	}
	return true
}

// updateEndpoint gives the controller the task's endpoint when it changed
// (worker.EndpointUpdater). Run goroutine only.
func (r *taskRunner) updateEndpoint(t *api.Task) {
	u, ok := r.ctlr.(EndpointUpdater)
	if !ok || t == nil || proto.Equal(r.endpoint, t.GetEndpoint()) {
		return
	}
	r.endpoint = t.GetEndpoint()
	u.UpdateEndpoint(t)
}

// controller returns the task's controller, made on first use; Executor
// promises that making one does no work and finds an existing container.
func (r *taskRunner) controller(t *api.Task) (Controller, error) {
	if r.ctlr == nil && r.ctlrErr == nil {
		r.ctlr, r.ctlrErr = r.a.cfg.Executor.Controller(t, r.a)
		r.endpoint = t.GetEndpoint() // what the controller was made with
	}
	return r.ctlr, r.ctlrErr
}

// prepare runs Prepare, retrying transient failures with a doubling delay
// (an image pull may fail for a moment) and failing the task after
// PrepareRetries; a Rejected error rejects it at once.
func (r *taskRunner) prepare(ctx context.Context, c Controller) {
	delay := r.a.cfg.PrepareRetryDelay
	for attempt := 0; ; attempt++ {
		err := r.op(ctx, c.Prepare)
		switch {
		case err == nil || errors.Is(err, ErrTaskPrepared):
			r.report(api.TaskState_READY, "prepared", "", nil)
			return
		case errors.Is(err, errInterrupted):
			return
		case IsRejected(err) || attempt >= r.a.cfg.PrepareRetries:
			r.fail(err, nil)
			return
		}
		r.log.Warn("prepare failed; retrying", "err", err, "attempt", attempt+1, "delay", delay)
		if r.op(ctx, func(ctx context.Context) error {
			if !sleep(ctx, r.a.cfg.Clock, delay) {
				return ctx.Err()
			}
			return nil
		}) != nil {
			return
		}
		delay *= 2
	}
}

// start runs Start; ErrTaskStarted means a restarted agent found the
// process already started, which must not be started twice.
func (r *taskRunner) start(ctx context.Context, c Controller) {
	err := r.op(ctx, c.Start)
	switch {
	case err == nil || errors.Is(err, ErrTaskStarted):
		r.report(api.TaskState_RUNNING, "started", "", r.containerStatus(ctx, c))
	case errors.Is(err, errInterrupted):
	default:
		r.fail(err, r.containerStatus(ctx, c))
	}
}

// wait waits for the process to exit: COMPLETE on exit 0, FAILED with the
// exit error (and its code in the container status) otherwise.
func (r *taskRunner) wait(ctx context.Context, c Controller) {
	err := r.op(ctx, c.Wait)
	if errors.Is(err, errInterrupted) {
		return
	}
	cs := r.containerStatus(ctx, c)
	if err == nil {
		r.report(api.TaskState_COMPLETE, "finished", "", cs)
		return
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		if cs == nil {
			cs = &api.ContainerStatus{}
		}
		cs.ExitCode = int32(exit.Code)
	}
	r.report(api.TaskState_FAILED, "failed", err.Error(), cs)
}

// stop shuts the process down for a desired state ≥ SHUTDOWN and reports
// SHUTDOWN unless the task had already ended. The container stays until the
// task is removed, for its logs.
func (r *taskRunner) stop(ctx context.Context, t *api.Task, last *api.TaskStatus) {
	if r.stopped {
		return
	}
	state := last.GetState()
	var cs *api.ContainerStatus
	var errText string
	if state >= api.TaskState_STARTING && state < api.TaskState_COMPLETE {
		if c, err := r.controller(t); err == nil {
			if err := r.shutdown(ctx, c); err != nil {
				if ctx.Err() != nil {
					return // the agent stops; a restart shuts it down
				}
				errText = err.Error()
			}
			cs = r.containerStatus(ctx, c)
		}
	}
	r.stopped = true
	if state < api.TaskState_COMPLETE {
		r.report(api.TaskState_SHUTDOWN, "shutdown", errText, cs)
	}
}

// teardown shuts the task's process down, removes its container and
// forgets it in the db. With report, a task that had not ended is reported
// SHUTDOWN first (desired REMOVE: the manager still waits for a final
// state). It returns false if the agent stopped before it was done: the db
// then still holds the removal, which a restart resumes.
func (r *taskRunner) teardown(ctx context.Context, t *api.Task, last *api.TaskStatus, report bool) bool {
	var cs *api.ContainerStatus
	if c, err := r.controller(t); err != nil {
		r.log.Warn("no controller to remove the container with", "err", err)
	} else {
		if !r.stopped {
			if err := r.shutdown(ctx, c); err == nil {
				r.stopped = true
			} else if ctx.Err() == nil {
				r.log.Warn("shutting the task down before removal", "err", err)
			}
		}
		if report && last.GetState() >= api.TaskState_STARTING {
			cs = r.containerStatus(ctx, c)
		}
		// A container whose process is still going away can refuse
		// removal for a moment: retry a few times before leaving it to the
		// next complete set's orphan sweep.
		delay := 100 * time.Millisecond
		for attempt := 1; ; attempt++ {
			err := c.Remove(ctx)
			if err == nil || notFound(err) || ctx.Err() != nil {
				break
			}
			if attempt == 5 {
				r.log.Warn("removing the container", "err", err)
				break
			}
			select {
			case <-ctx.Done():
			case <-r.a.cfg.Clock.After(delay):
			}
			delay *= 2
		}
	}
	if ctx.Err() != nil {
		return false
	}
	if report && last.GetState() < api.TaskState_COMPLETE {
		r.report(api.TaskState_SHUTDOWN, "removed", "", cs)
	}
	if err := r.a.db.delete(r.id); err != nil {
		r.log.Error("deleting the task from the task db", "err", err)
	}
	r.log.Info("task removed")
	return true
}

// shutdown stops the process gracefully, killing it if that fails; a
// container that is already gone is shut down. The stop grace period is
// the task's own (the controller applies it), except for a task whose
// service was removed: it is killed at the latest RemovedServiceStopGrace
// after the runner learned of the removal, also when that news arrives
// while the stop is under way. Assignment changes seen meanwhile are
// passed on to the run loop.
func (r *taskRunner) shutdown(ctx context.Context, c Controller) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	notified := false
	notify := func() { // the service's removal, before the stop where known
		if n, ok := c.(ServiceRemovedNotifier); ok && !notified && r.currentServiceRemoved() {
			notified = true
			r.mu.Lock()
			t := r.task
			r.mu.Unlock()
			n.ServiceRemoved(t)
		}
	}
	notify()
	done := make(chan error, 1)
	go func() { done <- c.Shutdown(sctx) }()
	var capTimer clockwork.Timer
	var capC <-chan time.Time
	armCap := func() {
		if capTimer != nil || !r.currentServiceRemoved() {
			return
		}
		notify()
		capTimer = r.a.cfg.Clock.NewTimer(r.a.cfg.RemovedServiceStopGrace)
		capC = capTimer.Chan()
		r.log.Info("the task's service was removed: stopping it within the removal's stop grace period",
			"max_grace", r.a.cfg.RemovedServiceStopGrace)
	}
	armCap()
	woken, capped := false, false
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-r.wake:
			woken = true
			armCap()
		case <-capC:
			capped = true
			cancel()
			<-done
			break wait
		}
	}
	if capTimer != nil {
		capTimer.Stop()
	}
	if woken {
		r.poke() // for the run loop, once this stop is done
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case capped:
		r.log.Warn("the task did not stop within the removal's stop grace period; killing it",
			"max_grace", r.a.cfg.RemovedServiceStopGrace)
		err = fmt.Errorf("did not stop within %v of its service's removal", r.a.cfg.RemovedServiceStopGrace)
	case err == nil || notFound(err):
		return nil
	default:
		r.log.Warn("shutdown failed; terminating", "err", err)
	}
	if terr := c.Terminate(ctx); terr != nil && !notFound(terr) {
		return errors.Join(err, terr)
	}
	return nil
}

// currentServiceRemoved tells whether the latest assignment marks the
// task's service as removed.
func (r *taskRunner) currentServiceRemoved() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.task.GetServiceRemoved()
}

func notFound(err error) bool {
	return errors.Is(err, ErrTaskNotFound) || errdefs.IsNotFound(err)
}

// op runs fn with a context that is cancelled when the task stops being
// wanted (desired state ≥ SHUTDOWN or removed) or ctx ends, so a long
// Prepare (an image pull) or Wait never holds up a shutdown. It returns
// errInterrupted in those cases. Changes that leave the task wanted are
// consumed here and picked up by the run loop after fn returns.
func (r *taskRunner) op(ctx context.Context, fn func(context.Context) error) error {
	opCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- fn(opCtx) }()
	for {
		select {
		case err := <-done:
			if opCtx.Err() != nil {
				return errInterrupted
			}
			return err
		case <-r.wake:
			if r.unwanted() {
				cancel()
				<-done
				return errInterrupted
			}
			// Still wanted: the change may be a new endpoint (published
			// ports) for the running task.
			r.updateEndpoint(r.currentTask())
		case <-ctx.Done():
			cancel()
			<-done
			return errInterrupted
		}
	}
}

// fail reports REJECTED for an error marked with Rejected, FAILED otherwise.
func (r *taskRunner) fail(err error, cs *api.ContainerStatus) {
	state, msg := api.TaskState_FAILED, "failed"
	if IsRejected(err) {
		state, msg = api.TaskState_REJECTED, "rejected"
	}
	r.report(state, msg, err.Error(), cs)
}

// containerStatus asks the controller what the runtime knows; nil if it
// cannot say in time.
func (r *taskRunner) containerStatus(ctx context.Context, c Controller) *api.ContainerStatus {
	ctx, cancel := context.WithTimeout(ctx, r.a.cfg.RPCTimeout)
	defer cancel()
	cs, err := c.Status(ctx)
	if err != nil {
		r.log.Debug("container status", "err", err)
		return nil
	}
	return cs
}

// report records a new status: in memory, in the db, and in the reporter's
// queue. States only move forward; a lower or equal one is a bug and is
// dropped.
func (r *taskRunner) report(state api.TaskState, msg, errText string, cs *api.ContainerStatus) {
	st := &api.TaskStatus{
		Timestamp: timestamppb.New(r.a.cfg.Clock.Now()),
		State:     state,
		Message:   msg,
		Err:       errText,
		Container: cs,
	}
	r.mu.Lock()
	if state <= r.last.GetState() {
		prev := r.last.GetState()
		r.mu.Unlock()
		r.log.Error("not reporting a state that does not move forward", "state", state, "last", prev)
		return
	}
	prev := r.last
	r.last = st
	if state == api.TaskState_ACCEPTED {
		r.acceptedAt = r.a.cfg.Clock.Now()
	}
	accepted := r.acceptedAt
	r.mu.Unlock()
	if state == api.TaskState_RUNNING && !accepted.IsZero() && prev.GetState() < api.TaskState_RUNNING {
		r.a.metrics.startSeconds.Observe(r.a.cfg.Clock.Since(accepted).Seconds())
	}
	if err := r.a.db.putStatus(r.id, st); err != nil {
		r.log.Error("recording the task status", "err", err)
	}
	r.a.reporter.enqueue(r.id, st)
	if r.a.onReport != nil {
		r.a.onReport(r.id, st)
	}
	r.log.Info("task state", "state", state.String(), "err", errText)
}
