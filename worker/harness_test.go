package worker

import (
	"context"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
)

// harness runs an agent against fake managers and a fake executor. The
// fake clock moves only while the test waits (waitFor, stop), in fixed
// steps of clockStep, each followed by a moment for the agent to react:
// schedules (heartbeats, flushes, backoff) run fast and in their order, and
// no time passes while the test itself acts. Waits are bounded both in fake
// time and, through the step count, in real time.
type harness struct {
	t       *testing.T
	clock   *clockwork.FakeClock
	exec    *fakeExec
	cluster *fakeCluster
	mgrs    []*fakeManager
	dir     string
	tweak   func(*Config) // adjusts the config before each start

	connMu sync.Mutex
	conns  map[string]*grpc.ClientConn

	repMu    sync.Mutex
	reported map[string][]api.TaskState

	agent  *Agent
	cancel context.CancelFunc
	done   chan error
}

const (
	// clockStep is how far the fake clock moves per step of a wait, and
	// clockSettle the real time the agent has to react to a step before
	// the next one (the condition is polled every millisecond meanwhile).
	clockStep   = 5 * time.Millisecond
	clockSettle = time.Millisecond
	// fakeWaitLimit bounds a wait in fake time: 20,000 steps.
	fakeWaitLimit = 100 * time.Second
)

func newHarness(t *testing.T, managers int) *harness {
	h := &harness{
		t: t, clock: clockwork.NewFakeClock(), exec: newFakeExec(), cluster: newFakeCluster(),
		dir: t.TempDir(), conns: map[string]*grpc.ClientConn{}, reported: map[string][]api.TaskState{},
	}
	h.exec.clock = h.clock
	for range managers {
		h.mgrs = append(h.mgrs, h.cluster.addManager(t))
	}
	t.Cleanup(func() {
		h.stop()
		h.connMu.Lock()
		for _, c := range h.conns {
			_ = c.Close()
		}
		h.connMu.Unlock()
	})
	return h
}

func (h *harness) dial(_ context.Context, addr string) (*grpc.ClientConn, error) {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	if c, ok := h.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	h.conns[addr] = c
	return c, nil
}

func testLogger() *slog.Logger {
	if os.Getenv("SHOAL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (h *harness) config() Config {
	var addrs []string
	for _, m := range h.mgrs {
		addrs = append(addrs, m.addr)
	}
	cfg := Config{
		NodeID: "n1", Managers: addrs, Dial: h.dial, Executor: h.exec, DataDir: h.dir,
		Clock: h.clock, Logger: testLogger(),
	}
	if h.tweak != nil {
		h.tweak(&cfg)
	}
	return cfg
}

// start runs a new agent on the harness's data dir.
func (h *harness) start() {
	h.t.Helper()
	a, err := New(h.config())
	if err != nil {
		h.t.Fatal(err)
	}
	a.onReport = func(id string, st *api.TaskStatus) {
		h.repMu.Lock()
		h.reported[id] = append(h.reported[id], st.GetState())
		h.repMu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.agent, h.cancel, h.done = a, cancel, make(chan error, 1)
	go func() { h.done <- a.Run(ctx) }()
}

// stop stops the agent and checks that Run returned in time and cleanly.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	// The clock steps on while Run winds down, in case it waits on a timer.
	var err error
	returned := func() bool {
		select {
		case err = <-h.done:
			return true
		default:
			return false
		}
	}
	testutil.EventuallyClock(h.t, h.clock, clockStep, fakeWaitLimit, clockSettle, returned, "Run to return after its context ended")
	if err != nil {
		h.t.Errorf("Run: %v", err)
	}
	h.checkNoAgentGoroutines()
}

// checkNoAgentGoroutines fails if a goroutine of the agent outlives Run.
// A goroutine may still be on its way out (past its last signal), so the
// check is retried for a moment.
func (h *harness) checkNoAgentGoroutines() {
	h.t.Helper()
	var leaked []string
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for range 200 {
		leaked = leaked[:0]
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "shoal/worker.(*Agent)") || strings.Contains(g, "shoal/worker.(*taskRunner)") ||
				strings.Contains(g, "shoal/worker.(*session)") || strings.Contains(g, "shoal/worker.(*group)") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return
		}
		<-tick.C
	}
	h.t.Errorf("%d agent goroutines outlived Run:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
}

// waitFor steps the fake clock until cond holds, failing the test after
// fakeWaitLimit of fake time.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	testutil.EventuallyClock(h.t, h.clock, clockStep, fakeWaitLimit, clockSettle, cond, "%s", what)
}

// reportedStates returns the states the agent reported for a task, before
// batching.
func (h *harness) reportedStates(id string) []api.TaskState {
	h.repMu.Lock()
	defer h.repMu.Unlock()
	return slices.Clone(h.reported[id])
}

// waitState waits until the managers have received state for task id.
func (h *harness) waitState(id string, state api.TaskState) *api.TaskStatus {
	h.t.Helper()
	h.waitFor("task "+id+" "+state.String()+" at the manager", func() bool {
		return slices.Contains(h.cluster.states(id), state)
	})
	h.cluster.mu.Lock()
	defer h.cluster.mu.Unlock()
	for _, u := range h.cluster.updates {
		if u.GetTaskId() == id && u.GetStatus().GetState() == state {
			return u.GetStatus()
		}
	}
	return nil
}

// waitRunning waits until the task is RUNNING at the managers and its
// runner has gone on to wait for the process: a test that stops the agent
// and counts the waits of the restarted one needs the first wait counted
// (RUNNING is reported before the runner reaches Wait, and under load the
// stop can come in between).
func (h *harness) waitRunning(id string) {
	h.t.Helper()
	h.waitState(id, api.TaskState_RUNNING)
	h.waitFor("task "+id+" waited on", func() bool { return h.exec.count("wait", id) >= 1 })
}

// sessionCount is the number of sessions opened with any manager.
func (h *harness) sessionCount() int {
	n := 0
	for _, m := range h.mgrs {
		n += len(m.sessions())
	}
	return n
}

func (h *harness) runnerCount() int {
	h.agent.mu.Lock()
	defer h.agent.mu.Unlock()
	return len(h.agent.runners)
}

func task(id string, desired api.TaskState) *api.Task {
	return &api.Task{
		Id: id, ServiceId: "svc1", NodeId: "n1", DesiredState: desired,
		Status: &api.TaskStatus{State: api.TaskState_ASSIGNED},
	}
}

// checkForward fails if the managers ever received a lower state for a
// task after a higher one.
func (h *harness) checkForward(id string) {
	h.t.Helper()
	states := h.cluster.states(id)
	for i := 1; i < len(states); i++ {
		if states[i] < states[i-1] {
			h.t.Errorf("task %s: state went backward: %v", id, states)
		}
	}
}
