// Package progress draws the converge display of `service create`, `update`,
// `scale` and `rollback`: Docker's texts ("overall progress: 2 out of 3
// tasks", per-slot bars, "verify: Waiting 5 seconds to verify that tasks are
// stable...", "verify: Service web converged"), redrawn in place on a
// terminal and, otherwise, as the lines docker 28.2.2 prints without a
// terminal (no per-task state lines, each line once per change: Display).
//
// Beyond Docker: a task that waits in PENDING shows the reason the daemon
// gives; a paused update names the failed task and its error; a service
// whose every task is rejected for the same reason (an image that does not
// exist) ends the display with that reason at once; and the display never
// waits forever: when no task has changed for StallTimeout it stops with an
// error, leaving the operation to continue in the background.
package progress

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/cmd/shoal/internal/clock"
	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	api "github.com/shoal-project/shoal/proto"
)

// Defaults of Options.
const (
	DefaultPoll         = 200 * time.Millisecond
	DefaultStallTimeout = 10 * time.Minute
	DefaultPendingAfter = 30 * time.Second
	defaultMonitor      = 5 * time.Second
)

// Options configure a display.
type Options struct {
	Out   io.Writer
	TTY   bool
	Width int // terminal width, 0 when unknown
	Clock clock.Clock
	// Poll is the time between two looks at the service (200 ms).
	Poll time.Duration
	// StallTimeout ends the display with an error when no task has changed
	// state for that long (10 minutes).
	StallTimeout time.Duration
	// PendingAfter is how long a task may sit in PENDING before its reason
	// replaces its bar (30 s).
	PendingAfter time.Duration
	// CLI names the binary in the Ctrl-C hint ("shoal").
	CLI string
}

func (o *Options) fill() {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Poll == 0 {
		o.Poll = DefaultPoll
	}
	if o.StallTimeout == 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	if o.PendingAfter == 0 {
		o.PendingAfter = DefaultPendingAfter
	}
	if o.CLI == "" {
		o.CLI = "shoal"
	}
}

// watchedDesired are the desired states of the tasks the display follows.
var watchedDesired = []api.TaskState{api.TaskState_READY, api.TaskState_RUNNING, api.TaskState_COMPLETE}

// Wait follows service serviceID until it converges, its update pauses, the
// user interrupts (ctx canceled: returns nil after saying the operation goes
// on), or nothing changes for StallTimeout. name is the service as the user
// named it, used in messages.
func Wait(ctx context.Context, c api.ControlClient, serviceID, name string, opts Options) error {
	opts.fill()
	w := &waiter{c: c, id: serviceID, name: name, o: opts, d: NewDisplay(opts.Out, opts.TTY, opts.Width), rej: newRejections()}
	return w.run(ctx)
}

type waiter struct {
	c    api.ControlClient
	id   string
	name string
	o    Options
	d    *Display
	u    updater
	rej  *rejections

	initialStatus *api.UpdateStatus
	polled        bool
	converged     bool
	convergedAt   time.Time
	rollback      bool
	endMessage    string
	lastSig       string
	lastChange    time.Time
}

func (w *waiter) run(ctx context.Context) error {
	for {
		done, err := w.poll(ctx)
		if ctx.Err() != nil {
			w.interrupted()
			return nil
		}
		if err != nil || done {
			return err
		}
		select {
		case <-w.o.Clock.After(w.o.Poll):
		case <-ctx.Done():
			w.interrupted()
			return nil
		}
	}
}

func (w *waiter) interrupted() {
	if w.converged {
		return
	}
	w.d.Message("Operation continuing in background.")
	w.d.Message(fmt.Sprintf("Use `%s service ps %s` to check progress.", w.o.CLI, w.name))
}

// poll looks at the service once and draws it; done reports the end.
func (w *waiter) poll(ctx context.Context) (bool, error) {
	now := w.o.Clock.Now()
	resp, err := w.c.GetService(ctx, &api.GetServiceRequest{ServiceId: w.id})
	if err != nil {
		return false, err
	}
	svc := resp.GetService()
	tasks, current, err := w.tasks(ctx, svc)
	if err != nil {
		return false, err
	}
	active, err := w.activeNodes(ctx)
	if err != nil {
		return false, err
	}
	if !w.polled {
		w.initialStatus = svc.GetUpdateStatus()
		w.lastChange = now
		w.polled = true
	}
	monitor := defaultMonitor
	if m := svc.GetSpec().GetUpdate().GetMonitor(); m != nil && m.AsDuration() > 0 {
		monitor = m.AsDuration()
	}
	if w.u == nil {
		w.u = w.newUpdater(svc)
	}
	if done, err := w.updateStatus(ctx, svc); done || err != nil {
		return done, err
	}
	if w.converged && now.Sub(w.convergedAt) >= monitor {
		w.d.Update("verify", fmt.Sprintf("Service %s converged", w.name), 0, 0)
		if w.endMessage != "" {
			w.d.Update("rollback", w.endMessage, 0, 0)
		}
		return true, nil
	}
	w.converged = w.u.update(svc, tasks, active, w.rollback)
	if w.converged {
		if isJob(svc) {
			w.d.Message("job complete")
			return true, nil
		}
		if w.convergedAt.IsZero() {
			w.convergedAt = now
		}
		if wait := monitor - now.Sub(w.convergedAt); wait >= 0 {
			secs := max(int64((wait+time.Second-1)/time.Second), 1)
			w.d.Update("verify", fmt.Sprintf("Waiting %d seconds to verify that tasks are stable...", secs), 0, 0)
		}
	} else {
		if !w.convergedAt.IsZero() {
			w.d.Update("verify", "Detected task failure", 0, 0)
		}
		w.convergedAt = time.Time{}
	}
	if !w.converged {
		if reason, stuck := w.rej.observe(svc, current); stuck {
			return true, rejectedError(w.name, w.o.CLI, reason, w.rej.total[reason])
		}
	}
	if sig := signature(tasks); sig != w.lastSig {
		w.lastSig, w.lastChange = sig, now
	} else if !w.converged && now.Sub(w.lastChange) >= w.o.StallTimeout {
		return true, fmt.Errorf("service %s has not converged: no task changed state for %s.\n"+
			"The operation continues in the background. Use `%s service ps %s` to check progress.",
			w.name, w.o.StallTimeout, w.o.CLI, w.name)
	}
	return false, nil
}

// updateStatus reacts to the service's update status. A terminal status
// that was already there at the first look belongs to an earlier update and
// is ignored.
func (w *waiter) updateStatus(ctx context.Context, svc *api.Service) (bool, error) {
	us := svc.GetUpdateStatus()
	if us == nil {
		return false, nil
	}
	stale := w.initialStatus != nil && proto.Equal(us, w.initialStatus)
	switch us.GetState() {
	case api.UpdateStatus_UPDATING:
		w.rollback = false
	case api.UpdateStatus_COMPLETED:
		if !stale && !w.converged {
			return true, nil
		}
	case api.UpdateStatus_PAUSED:
		if !stale {
			return true, w.pausedError(ctx, svc, "service update paused")
		}
	case api.UpdateStatus_ROLLBACK_STARTED:
		if !w.rollback && us.GetMessage() != "" {
			w.d.Update("rollback", us.GetMessage(), 0, 0)
		}
		w.rollback = true
	case api.UpdateStatus_ROLLBACK_PAUSED:
		if !stale {
			return true, w.pausedError(ctx, svc, "service rollback paused")
		}
	case api.UpdateStatus_ROLLBACK_COMPLETED:
		if !w.converged {
			w.endMessage = us.GetMessage()
		}
		w.rollback = true
	}
	return false, nil
}

// pausedError says the update paused, with the server's reason and, when it
// can be found, the task that failed and its error.
func (w *waiter) pausedError(ctx context.Context, svc *api.Service, what string) error {
	msg := fmt.Sprintf("%s: %s", what, svc.GetUpdateStatus().GetMessage())
	resp, err := w.c.ListTasks(ctx, &api.ListTasksRequest{Filters: &api.ListFilters{ServiceIds: []string{svc.GetId()}}})
	if err != nil {
		return fmt.Errorf("%s", msg)
	}
	var failed *api.Task
	for _, t := range resp.GetTasks() {
		st := t.GetStatus()
		if st.GetErr() == "" || st.GetState() < api.TaskState_COMPLETE {
			continue
		}
		if failed == nil || st.GetTimestamp().AsTime().After(failed.GetStatus().GetTimestamp().AsTime()) {
			failed = t
		}
	}
	if failed != nil {
		msg += fmt.Sprintf("\nlast task failure: %s (%s): %s", taskName(svc, failed),
			formatter.TruncateID(failed.GetId()), failed.GetStatus().GetErr())
	}
	return fmt.Errorf("%s", msg)
}

func taskName(svc *api.Service, t *api.Task) string {
	if t.GetSlot() != 0 {
		return fmt.Sprintf("%s.%d", svc.GetSpec().GetAnnotations().GetName(), t.GetSlot())
	}
	return fmt.Sprintf("%s.%s", svc.GetSpec().GetAnnotations().GetName(), t.GetNodeId())
}

// tasks lists the service's tasks of its current spec version: those meant
// to run (watched), and all of them, history included (current).
func (w *waiter) tasks(ctx context.Context, svc *api.Service) (watched, current []*api.Task, err error) {
	resp, err := w.c.ListTasks(ctx, &api.ListTasksRequest{Filters: &api.ListFilters{ServiceIds: []string{svc.GetId()}}})
	if err != nil {
		return nil, nil, err
	}
	for _, t := range resp.GetTasks() {
		if svc.GetSpecVersion() != 0 && t.GetSpecVersion() != svc.GetSpecVersion() {
			continue
		}
		current = append(current, t)
		if slices.Contains(watchedDesired, t.GetDesiredState()) {
			watched = append(watched, t)
		}
	}
	return watched, current, nil
}

// activeNodes are the nodes not DOWN; tasks elsewhere are not waited for.
func (w *waiter) activeNodes(ctx context.Context) (map[string]bool, error) {
	resp, err := w.c.ListNodes(ctx, &api.ListNodesRequest{})
	if err != nil {
		return nil, err
	}
	active := map[string]bool{}
	for _, n := range resp.GetNodes() {
		if n.GetStatus().GetState() != api.NodeStatus_DOWN {
			active[n.GetId()] = true
		}
	}
	return active, nil
}

func (w *waiter) newUpdater(svc *api.Service) updater {
	h := hinter{now: w.o.Clock.Now, pendingAfter: w.o.PendingAfter}
	switch svc.GetSpec().GetMode().(type) {
	case *api.ServiceSpec_Global:
		return &global{d: w.d, h: h}
	case *api.ServiceSpec_ReplicatedJob:
		return newReplicatedJob(w.d, h, svc)
	case *api.ServiceSpec_GlobalJob:
		return &globalJob{d: w.d, h: h}
	}
	return &replicated{d: w.d, h: h}
}

func isJob(svc *api.Service) bool {
	switch svc.GetSpec().GetMode().(type) {
	case *api.ServiceSpec_ReplicatedJob, *api.ServiceSpec_GlobalJob:
		return true
	}
	return false
}

// signature summarizes the tasks' states and errors to notice a stall.
func signature(tasks []*api.Task) string {
	parts := make([]string, 0, len(tasks))
	for _, t := range tasks {
		parts = append(parts, fmt.Sprintf("%s:%d:%s", t.GetId(), t.GetStatus().GetState(), t.GetStatus().GetErr()))
	}
	sort.Strings(parts)
	return strings.Join(parts, ";")
}
