package node

import (
	"context"
	"sync"

	"github.com/shoal-project/shoal/overlay"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/worker"
)

// fakeExec is a test-only executor: tasks "run" at once and until they
// are shut down; no container, no root. It records the nodes it was opened
// for and the tasks removed.
type fakeExec struct {
	mu      sync.Mutex
	opened  []string
	tasks   map[string]bool // task ID → has a "container"
	removed []string
	// overlays are the overlay agents the executor was opened with.
	overlays []*overlay.Agent
}

func newFakeExec() *fakeExec { return &fakeExec{tasks: map[string]bool{}} }

// open is the node's ExecutorFunc.
func (f *fakeExec) open(_ context.Context, nodeID, _ string, ov *overlay.Agent) (Executor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opened = append(f.opened, nodeID)
	f.overlays = append(f.overlays, ov)
	return fakeHandle{f}, nil
}

func (f *fakeExec) openedFor() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.opened...)
}

// fakeHandle is one opened executor.
type fakeHandle struct{ f *fakeExec }

func (h fakeHandle) Close() error { return nil }

func (h fakeHandle) Describe(context.Context) (*api.NodeDescription, error) {
	return &api.NodeDescription{Hostname: "fake", Platform: &api.Platform{Os: "linux", Architecture: "amd64"},
		Resources: &api.Resources{NanoCpus: 2e9, MemoryBytes: 1 << 30}}, nil
}

func (h fakeHandle) Controller(t *api.Task, _ worker.Dependencies) (worker.Controller, error) {
	return &fakeCtlr{f: h.f, id: t.GetId(), done: make(chan struct{})}, nil
}

func (h fakeHandle) Tasks(context.Context) ([]string, error) {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	var out []string
	for id := range h.f.tasks {
		out = append(out, id)
	}
	return out, nil
}

// fakeCtlr runs a task that lasts until Shutdown or Terminate.
type fakeCtlr struct {
	f    *fakeExec
	id   string
	once sync.Once
	done chan struct{}
}

func (c *fakeCtlr) Prepare(context.Context) error {
	c.f.mu.Lock()
	c.f.tasks[c.id] = true
	c.f.mu.Unlock()
	return nil
}
func (c *fakeCtlr) Start(context.Context) error { return nil }
func (c *fakeCtlr) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return nil
	}
}
func (c *fakeCtlr) Shutdown(context.Context) error  { c.once.Do(func() { close(c.done) }); return nil }
func (c *fakeCtlr) Terminate(context.Context) error { c.once.Do(func() { close(c.done) }); return nil }
func (c *fakeCtlr) Remove(context.Context) error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	delete(c.f.tasks, c.id)
	c.f.removed = append(c.f.removed, c.id)
	return nil
}
func (c *fakeCtlr) Status(context.Context) (*api.ContainerStatus, error) {
	return &api.ContainerStatus{ContainerId: c.id}, nil
}
func (c *fakeCtlr) Close() error { return nil }

var _ Executor = fakeHandle{}
