package worker

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	api "github.com/shoal-project/shoal/proto"
)

// fakeExec is a scripted Executor. Its containers outlive controllers and
// agents, like containerd's, so a restarted agent finds them.
type fakeExec struct {
	mu         sync.Mutex
	containers map[string]*fakeContainer
	calls      []string            // "prepare t1", "start t1", ... in order
	prepareErr map[string][]error  // errors Prepare returns, consumed in order
	startErr   map[string]error    // error Start returns
	ctlrErr    map[string]error    // error Controller returns
	logs       map[string][]string // lines LogSource returns
	// prepareGate, when set for a task, holds Prepare until it is closed
	// or the call's context ends (an image pull that takes its time).
	prepareGate map[string]chan struct{}
	// trapTerm marks containers whose process ignores the stop signal:
	// Shutdown then kills it only after the task's stop grace period
	// (default 10s) on clock, as the containerd controller does.
	trapTerm map[string]bool
	clock    clockwork.Clock
	at       map[string]time.Time // clock time of each call's first occurrence
}

type fakeContainer struct {
	started  bool
	exited   chan struct{} // closed at exit
	exitCode int
}

func newFakeExec() *fakeExec {
	return &fakeExec{
		containers: map[string]*fakeContainer{},
		prepareErr: map[string][]error{},
		startErr:   map[string]error{},
		ctlrErr:    map[string]error{},
		logs:       map[string][]string{},

		prepareGate: map[string]chan struct{}{},
		trapTerm:    map[string]bool{},
		clock:       clockwork.NewRealClock(),
		at:          map[string]time.Time{},
	}
}

var _ Executor = (*fakeExec)(nil)
var _ Controller = (*fakeCtlr)(nil)
var _ LogSource = (*fakeCtlr)(nil)

func (e *fakeExec) Describe(context.Context) (*api.NodeDescription, error) {
	return &api.NodeDescription{Hostname: "fakehost", Platform: &api.Platform{Os: "linux", Architecture: "amd64"}}, nil
}

func (e *fakeExec) Controller(t *api.Task, _ Dependencies) (Controller, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.ctlrErr[t.GetId()]; err != nil {
		return nil, err
	}
	grace := 10 * time.Second
	if g := t.GetSpec().GetContainer().GetStopGracePeriod(); g != nil {
		grace = g.AsDuration()
	}
	return &fakeCtlr{e: e, id: t.GetId(), grace: grace}, nil
}

func (e *fakeExec) Tasks(context.Context) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ids []string
	for id := range e.containers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// addContainer creates a running container behind the agent's back (an
// orphan, or one left by a lost db).
func (e *fakeExec) addContainer(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.containers[id] = &fakeContainer{started: true, exited: make(chan struct{})}
}

// exit makes a started container's process exit with code.
func (e *fakeExec) exit(id string, code int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.exitLocked(id, code)
}

func (e *fakeExec) exitLocked(id string, code int) {
	c, ok := e.containers[id]
	if !ok || !c.started {
		return
	}
	select {
	case <-c.exited:
	default:
		c.exitCode = code
		close(c.exited)
	}
}

func (e *fakeExec) has(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.containers[id]
	return ok
}

func (e *fakeExec) running(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.containers[id]
	if !ok || !c.started {
		return false
	}
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// count tells how many times op was called for id.
func (e *fakeExec) count(op, id string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.calls {
		if c == op+" "+id {
			n++
		}
	}
	return n
}

// callList returns the calls made so far, for failure messages.
func (e *fakeExec) callList() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.calls)
}

func (e *fakeExec) record(op, id string) {
	e.calls = append(e.calls, op+" "+id)
	if _, ok := e.at[op+" "+id]; !ok {
		e.at[op+" "+id] = e.clock.Now()
	}
}

// when returns the clock time of the first call of op for id.
func (e *fakeExec) when(op, id string) (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.at[op+" "+id]
	return t, ok
}

type fakeCtlr struct {
	e     *fakeExec
	id    string
	grace time.Duration
}

func (c *fakeCtlr) Prepare(ctx context.Context) error {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	e.record("prepare", c.id)
	if gate := e.prepareGate[c.id]; gate != nil {
		e.mu.Unlock()
		select {
		case <-gate:
		case <-ctx.Done():
			e.mu.Lock()
			return ctx.Err()
		}
		e.mu.Lock()
	}
	if errs := e.prepareErr[c.id]; len(errs) > 0 {
		e.prepareErr[c.id] = errs[1:]
		return errs[0]
	}
	if _, ok := e.containers[c.id]; ok {
		return ErrTaskPrepared
	}
	e.containers[c.id] = &fakeContainer{exited: make(chan struct{})}
	return nil
}

func (c *fakeCtlr) Start(context.Context) error {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	e.record("start", c.id)
	if err := e.startErr[c.id]; err != nil {
		return err
	}
	ct, ok := e.containers[c.id]
	switch {
	case !ok:
		return fmt.Errorf("task %s: %w", c.id, ErrTaskNotFound)
	case ct.started:
		return ErrTaskStarted
	}
	ct.started = true
	e.record("run", c.id) // a process really started
	return nil
}

func (c *fakeCtlr) Wait(ctx context.Context) error {
	e := c.e
	e.mu.Lock()
	e.record("wait", c.id)
	ct, ok := e.containers[c.id]
	e.mu.Unlock()
	if !ok {
		return fmt.Errorf("task %s: %w", c.id, ErrTaskNotFound)
	}
	select {
	case <-ct.exited:
	case <-ctx.Done():
		return ctx.Err()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if ct.exitCode != 0 {
		return &ExitError{Code: ct.exitCode}
	}
	return nil
}

func (c *fakeCtlr) Shutdown(ctx context.Context) error {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	e.record("shutdown", c.id)
	ct, ok := e.containers[c.id]
	if !ok {
		return fmt.Errorf("task %s: %w", c.id, ErrTaskNotFound)
	}
	if !e.trapTerm[c.id] {
		e.exitLocked(c.id, 143) // SIGTERM
		return nil
	}
	// The process ignores the signal: SIGKILL after the grace period.
	e.mu.Unlock()
	timer := e.clock.NewTimer(c.grace)
	defer timer.Stop()
	select {
	case <-ct.exited:
		e.mu.Lock()
		return nil
	case <-ctx.Done():
		e.mu.Lock()
		e.record("shutdown-cut-short", c.id)
		return ctx.Err()
	case <-timer.Chan():
		e.mu.Lock()
		e.record("grace-expired", c.id)
		e.exitLocked(c.id, 137)
		return nil
	}
}

func (c *fakeCtlr) Terminate(context.Context) error {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	e.record("terminate", c.id)
	e.exitLocked(c.id, 137)
	return nil
}

func (c *fakeCtlr) Remove(context.Context) error {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	e.record("remove", c.id)
	e.exitLocked(c.id, 137)
	delete(e.containers, c.id)
	return nil
}

func (c *fakeCtlr) Status(context.Context) (*api.ContainerStatus, error) {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	ct, ok := e.containers[c.id]
	if !ok {
		return nil, fmt.Errorf("task %s: %w", c.id, ErrTaskNotFound)
	}
	st := &api.ContainerStatus{ContainerId: c.id}
	select {
	case <-ct.exited:
		st.ExitCode = int32(ct.exitCode)
	default:
		if ct.started {
			st.Pid = 4242
		}
	}
	return st, nil
}

func (c *fakeCtlr) Close() error { return nil }

func (c *fakeCtlr) Logs(ctx context.Context, opts LogOptions, fn func(*api.LogMessage) error) error {
	c.e.mu.Lock()
	lines := slices.Clone(c.e.logs[c.id])
	c.e.mu.Unlock()
	for _, l := range lines {
		if err := fn(&api.LogMessage{Stream: api.LogStream_LOG_STREAM_STDOUT, Data: []byte(l + "\n")}); err != nil {
			return err
		}
	}
	if opts.Follow {
		<-ctx.Done()
	}
	return nil
}
