package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

// Agent is the node agent: it keeps a session with a manager, runs the
// tasks assigned to this node through the Executor and reports their
// status. Create it with New and run it with Run.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	reporter *reporter
	remotes  *remotes
	seed     uint64
	started  atomic.Bool
	// period is the heartbeat period in nanoseconds, the last one a manager
	// named (it survives sessions).
	period atomic.Int64

	mu      sync.Mutex
	db      *taskDB // set by Run before anything reads it
	runCtx  context.Context
	wg      sync.WaitGroup // task runners
	runners map[string]*taskRunner
	secrets map[string]*api.Secret // in memory only: never written to disk
	configs map[string]*api.Config
	node    *api.Node
	rootCA  []byte

	// onReport, when set (by tests, before Run), sees every status a
	// runner reports, before batching coalesces them.
	onReport func(taskID string, st *api.TaskStatus)
}

// New checks cfg and returns an agent. It does no I/O: Run opens the task db.
func New(cfg Config) (*Agent, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Managers = append([]string(nil), cfg.Managers...)
	seed := seedFor(cfg.NodeID)
	a := &Agent{
		cfg:      cfg,
		log:      cfg.Logger,
		reporter: newReporter(cfg.StatusBatchSize),
		remotes:  newRemotes(cfg.Managers, seed),
		seed:     seed,
		runners:  map[string]*taskRunner{},
		secrets:  map[string]*api.Secret{},
		configs:  map[string]*api.Config{},
	}
	a.period.Store(int64(cfg.HeartbeatPeriod))
	return a, nil
}

// Run opens the task db, resumes the tasks recorded in it, and keeps a
// session with the managers until ctx ends. It returns nil when ctx ends,
// after every goroutine it started has returned; containers keep running
// (a restarted agent reattaches to them). It returns an error at once if
// the task db cannot be opened (a *DamagedDBError when it is damaged).
// Run may be called once.
func (a *Agent) Run(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("worker: Agent.Run called twice")
	}
	db, stored, err := openTaskDB(a.cfg.DataDir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Resume before any manager answers, so containers are waited on (and
	// tasks half-way through their lifecycle carry on) while none is
	// reachable. Nothing is removed until a session's complete set says so.
	a.mu.Lock()
	a.db, a.runCtx = db, ctx
	for _, st := range stored {
		a.startRunnerLocked(st.task, st.status, false)
	}
	a.mu.Unlock()
	for _, st := range stored {
		// The last status may not have reached a manager before the
		// restart; sending it again is harmless.
		if st.status.GetState() >= api.TaskState_ACCEPTED {
			a.reporter.enqueue(st.task.GetId(), st.status)
		}
	}
	a.log.Info("agent started", "resumed_tasks", len(stored), "managers", a.cfg.Managers)

	loopErr := a.sessionLoop(ctx)

	cancel()
	a.wg.Wait() // runners only start from Run and the session loop, both done
	if err := db.close(); err != nil {
		a.log.Warn("closing the task db", "err", err)
	}
	return loopErr
}

// Node returns the node object the last session message carried, or nil.
func (a *Agent) Node() *api.Node {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.node == nil {
		return nil
	}
	return proto.Clone(a.node).(*api.Node)
}

// RootCA returns the root CA certificate (PEM) the managers sent, or nil.
func (a *Agent) RootCA() []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]byte(nil), a.rootCA...)
}

// Managers returns the manager addresses the agent currently knows, so the
// daemon can remember them across restarts.
func (a *Agent) Managers() []string { return a.remotes.addrs() }

func (a *Agent) heartbeatPeriod() time.Duration { return time.Duration(a.period.Load()) }

// applySessionMessage records what a session message carries.
func (a *Agent) applySessionMessage(msg *api.SessionMessage) {
	a.mu.Lock()
	if msg.GetNode() != nil {
		a.node = msg.GetNode()
	}
	if len(msg.GetRootCa()) > 0 {
		a.rootCA = msg.GetRootCa()
	}
	a.mu.Unlock()
	a.remotes.replace(msg.GetManagers())
}

// startRunnerLocked starts the worker of a task; an orphan's worker only
// removes its container. a.mu must be held.
func (a *Agent) startRunnerLocked(t *api.Task, last *api.TaskStatus, orphan bool) {
	if a.runCtx.Err() != nil {
		return
	}
	r := newTaskRunner(a, t, last)
	r.removed = orphan
	a.runners[t.GetId()] = r
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		r.run(a.runCtx)
	}()
}

// forget drops a runner that has removed its task.
func (a *Agent) forget(r *taskRunner) {
	a.mu.Lock()
	if a.runners[r.id] == r {
		delete(a.runners, r.id)
	}
	a.mu.Unlock()
	a.reporter.drop(r.id)
}

// secret returns an assigned secret, or nil: the seam through which
// executors will get secrets (configs likewise, from a.configs).
func (a *Agent) secret(id string) *api.Secret {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.secrets[id]
}
