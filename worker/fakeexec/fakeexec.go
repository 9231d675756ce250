package fakeexec

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/worker"
)

// Config configures an Executor. Every field is optional.
type Config struct {
	// Hostname is the node's hostname in Describe (default "fakehost").
	Hostname string
	// Resources are the node's resources in Describe (default 2 CPUs,
	// 4 GiB).
	Resources *api.Resources
	// Rules script failures; nil gives the executor rules of its own
	// (see Executor.Rules). Share one Rules among executors to script a
	// whole cluster.
	Rules *Rules
	// Clock times delayed exits and health failures; nil is the real clock.
	Clock clockwork.Clock
}

// Executor is an in-memory worker.Executor. Create it with New.
type Executor struct {
	host  string
	res   *api.Resources
	rules *Rules
	clock clockwork.Clock

	mu         sync.Mutex
	containers map[string]*container

	prepares, starts, stops, removes atomic.Int64
}

// State is the state of a container.
type State int

const (
	// Created: prepared, not started.
	Created State = iota
	// Running: started and not exited.
	Running
	// Exited: the process ended (exit, stop, kill).
	Exited
)

func (s State) String() string {
	switch s {
	case Created:
		return "created"
	case Running:
		return "running"
	default:
		return "exited"
	}
}

// container is one task's container. Its fields are guarded by the
// executor's mutex, except exited, which is closed once under it.
type container struct {
	id        string
	serviceID string
	fate      *Rule
	state     State
	starts    int // successful Start calls that started the process
	exited    chan struct{}
	exitCode  int
	cause     error
}

// New returns an executor with no containers.
func New(cfg Config) *Executor {
	if cfg.Hostname == "" {
		cfg.Hostname = "fakehost"
	}
	if cfg.Resources == nil {
		cfg.Resources = &api.Resources{NanoCpus: 2e9, MemoryBytes: 4 << 30}
	}
	if cfg.Rules == nil {
		cfg.Rules = &Rules{}
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	return &Executor{host: cfg.Hostname, res: cfg.Resources, rules: cfg.Rules, clock: cfg.Clock, containers: map[string]*container{}}
}

var (
	_ worker.Executor   = (*Executor)(nil)
	_ worker.Controller = (*controller)(nil)
)

// Rules returns the executor's rules.
func (e *Executor) Rules() *Rules { return e.rules }

// Describe implements worker.Executor.
func (e *Executor) Describe(context.Context) (*api.NodeDescription, error) {
	return &api.NodeDescription{
		Hostname:  e.host,
		Platform:  &api.Platform{Os: "linux", Architecture: "amd64"},
		Resources: proto.Clone(e.res).(*api.Resources),
		Engine:    &api.EngineDescription{EngineVersion: "fakeexec"},
	}, nil
}

// Controller implements worker.Executor. The task's outcome is decided by
// the rules now, unless its container exists and already has one.
func (e *Executor) Controller(t *api.Task, _ worker.Dependencies) (worker.Controller, error) {
	if t.GetId() == "" {
		return nil, errors.New("fakeexec: task without an ID")
	}
	e.mu.Lock()
	c := e.containers[t.GetId()]
	e.mu.Unlock()
	var fate *Rule
	if c == nil {
		fate = e.rules.decide(t, e.host)
	}
	return &controller{e: e, id: t.GetId(), serviceID: t.GetServiceId(), fate: fate}, nil
}

// Tasks implements worker.Executor: the IDs of every container, sorted.
func (e *Executor) Tasks(context.Context) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := make([]string, 0, len(e.containers))
	for id := range e.containers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// Container describes one container, for assertions.
type Container struct {
	TaskID    string
	ServiceID string
	State     State
	// Starts counts the times the process was started: more than one
	// would be a task run twice.
	Starts   int
	ExitCode int
}

// Containers lists the containers, sorted by task ID.
func (e *Executor) Containers() []Container {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Container, 0, len(e.containers))
	for _, c := range e.containers {
		out = append(out, Container{TaskID: c.id, ServiceID: c.serviceID, State: c.state, Starts: c.starts, ExitCode: c.exitCode})
	}
	slices.SortFunc(out, func(a, b Container) int {
		if a.TaskID < b.TaskID {
			return -1
		}
		if a.TaskID > b.TaskID {
			return 1
		}
		return 0
	})
	return out
}

// Running lists the task IDs whose process runs, sorted.
func (e *Executor) Running() []string {
	var ids []string
	for _, c := range e.Containers() {
		if c.State == Running {
			ids = append(ids, c.TaskID)
		}
	}
	return ids
}

// Counts are the executor's calls that did something.
type Counts struct {
	Prepares, Starts, Stops, Removes int64
}

// Counts returns how many containers were created, started, stopped and
// removed.
func (e *Executor) Counts() Counts {
	return Counts{Prepares: e.prepares.Load(), Starts: e.starts.Load(), Stops: e.stops.Load(), Removes: e.removes.Load()}
}

// Exit makes a running process exit with code (a crash when not 0). It
// reports whether the task had a running process.
func (e *Executor) Exit(taskID string, code int) bool {
	return e.end(taskID, code, nil)
}

// Unhealthy makes a running task fail its health check: the process is
// killed and Wait returns exit 137 with the cause "container unhealthy".
func (e *Executor) Unhealthy(taskID string) bool {
	return e.end(taskID, 137, errUnhealthy)
}

func (e *Executor) end(taskID string, code int, cause error) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.containers[taskID]
	if c == nil || c.state != Running {
		return false
	}
	e.exitLocked(c, code, cause)
	return true
}

// Reset forgets every container, as a machine that rebooted without its
// containers (the agent then finds none of its tasks' containers).
func (e *Executor) Reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.containers {
		e.exitLocked(c, 137, nil)
	}
	e.containers = map[string]*container{}
}

var errUnhealthy = errors.New("container unhealthy: fakeexec health check failed")

// exitLocked ends c's process if it runs (or was never started). e.mu held.
func (e *Executor) exitLocked(c *container, code int, cause error) {
	if c.state == Exited {
		return
	}
	c.state, c.exitCode, c.cause = Exited, code, cause
	close(c.exited)
}

func (e *Executor) container(id string) (*container, error) {
	c := e.containers[id]
	if c == nil {
		return nil, fmt.Errorf("task %s: %w", id, worker.ErrTaskNotFound)
	}
	return c, nil
}

// controller is one task's controller.
type controller struct {
	e         *Executor
	id        string
	serviceID string
	fate      *Rule // nil when the container existed: its own fate counts
}

func (c *controller) Prepare(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.containers[c.id]; ok {
		return worker.ErrTaskPrepared
	}
	if c.fate != nil && c.fate.PrepareErr != nil {
		return c.fate.PrepareErr
	}
	e.containers[c.id] = &container{id: c.id, serviceID: c.serviceID, fate: c.fate, exited: make(chan struct{})}
	e.prepares.Add(1)
	return nil
}

func (c *controller) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	ct, err := e.container(c.id)
	if err != nil {
		return err
	}
	if ct.state != Created {
		return worker.ErrTaskStarted
	}
	f := ct.fate
	if f != nil && f.StartErr != nil {
		return f.StartErr
	}
	ct.state = Running
	ct.starts++
	e.starts.Add(1)
	switch {
	case f != nil && f.Unhealthy && f.After <= 0:
		e.exitLocked(ct, 137, errUnhealthy)
		return &worker.ExitError{Code: 137, Cause: errUnhealthy}
	case f != nil && f.Exit && f.After <= 0:
		e.exitLocked(ct, f.ExitCode, nil)
	}
	return nil
}

func (c *controller) Wait(ctx context.Context) error {
	e := c.e
	e.mu.Lock()
	ct, err := e.container(c.id)
	if err != nil {
		e.mu.Unlock()
		return err
	}
	if ct.state == Created {
		e.mu.Unlock()
		return fmt.Errorf("task %s: wait before start", c.id)
	}
	f := ct.fate
	e.mu.Unlock()

	var timeout <-chan time.Time
	if f != nil && (f.Exit || f.Unhealthy) && f.After > 0 {
		// The delay counts from this Wait: an agent restarted while the
		// process ran gives it the full delay again. Good enough for a fake.
		t := e.clock.NewTimer(f.After)
		defer t.Stop()
		timeout = t.Chan()
	}
	select {
	case <-ct.exited:
	case <-timeout:
		code, cause := f.ExitCode, error(nil)
		if f.Unhealthy {
			code, cause = 137, errUnhealthy
		}
		e.mu.Lock()
		e.exitLocked(ct, code, cause)
		e.mu.Unlock()
	case <-ctx.Done():
		return ctx.Err()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if ct.exitCode == 0 && ct.cause == nil {
		return nil
	}
	return &worker.ExitError{Code: ct.exitCode, Cause: ct.cause}
}

func (c *controller) Shutdown(ctx context.Context) error {
	return c.stop(ctx, 143)
}

func (c *controller) Terminate(ctx context.Context) error {
	return c.stop(ctx, 137)
}

func (c *controller) stop(ctx context.Context, code int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	ct, err := e.container(c.id)
	if err != nil {
		return err
	}
	if ct.state == Running {
		e.stops.Add(1)
	}
	e.exitLocked(ct, code, nil)
	return nil
}

func (c *controller) Remove(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	ct, ok := e.containers[c.id]
	if !ok {
		return nil
	}
	e.exitLocked(ct, 137, nil)
	delete(e.containers, c.id)
	e.removes.Add(1)
	return nil
}

func (c *controller) Status(context.Context) (*api.ContainerStatus, error) {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	ct, err := e.container(c.id)
	if err != nil {
		return nil, err
	}
	st := &api.ContainerStatus{ContainerId: c.id}
	switch ct.state {
	case Running:
		st.Pid = 1
	case Exited:
		st.ExitCode = int32(ct.exitCode)
	}
	return st, nil
}

func (c *controller) Close() error { return nil }
