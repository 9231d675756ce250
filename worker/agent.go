package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/internal/remotes"
	api "github.com/shoal-project/shoal/proto"
)

// Agent is the node agent: it keeps a session with a manager, runs the
// tasks assigned to this node through the Executor and reports their
// status. Create it with New and run it with Run.
type Agent struct {
	// retry, cap 1: RetryNow's signal to the session loop.
	retry    chan struct{}
	cfg      Config
	log      *slog.Logger
	reporter *reporter
	remotes  *remotes.Remotes
	seed     uint64
	started  atomic.Bool
	// rebuilding is set while the task db lost records at start and the
	// first complete set has not arrived yet (see sweepOrphans).
	rebuilding atomic.Bool
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

	metrics *agentMetrics
	stats   statsCache // last readings for `shoal stats` (stats.go)

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
	if cfg.TaskDBKey != nil {
		cfg.TaskDBKey = append([]byte(nil), cfg.TaskDBKey...)
	}
	seed := remotes.SeedFor(cfg.NodeID)
	a := &Agent{
		retry:    make(chan struct{}, 1),
		cfg:      cfg,
		log:      cfg.Logger,
		reporter: newReporter(cfg.StatusBatchSize),
		remotes:  remotes.New(cfg.Managers, seed),
		seed:     seed,
		runners:  map[string]*taskRunner{},
		secrets:  map[string]*api.Secret{},
		configs:  map[string]*api.Config{},
		metrics:  newAgentMetrics(),
	}
	a.period.Store(int64(cfg.HeartbeatPeriod))
	return a, nil
}

// Run opens the task db, resumes the tasks recorded in it, and keeps a
// session with the managers until ctx ends. It returns nil when ctx ends,
// after every goroutine it started has returned; containers keep running
// (a restarted agent reattaches to them).
//
// A damaged task db does not stop the agent: records that do not decode
// are dropped and a file beyond use is moved aside (both logged with the
// file's name), and the managers' first complete set of assignments
// together with containerd's containers rebuild what was lost. Run returns
// an error at once only if the task db cannot be opened at all (a
// *DamagedDBError when a damaged file could not be moved aside).
// Run may be called once.
func (a *Agent) Run(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("worker: Agent.Run called twice")
	}
	db, load, err := openTaskDB(a.cfg.DataDir, taskDBOptions{key: a.cfg.TaskDBKey, now: a.cfg.Clock.Now})
	if err != nil {
		return err
	}
	a.logTaskDBLoad(db.path, load)
	stored := load.tasks
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
func (a *Agent) Managers() []string { return a.remotes.Addrs() }

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
	var node *api.Node
	if a.node != nil {
		node = proto.Clone(a.node).(*api.Node)
	}
	a.mu.Unlock()
	a.remotes.Replace(msg.GetManagers())
	if a.cfg.OnNodeUpdate != nil && (msg.GetNode() != nil || len(msg.GetManagers()) > 0) {
		a.cfg.OnNodeUpdate(NodeUpdate{Node: node, Managers: a.remotes.Addrs()})
	}
	if a.cfg.OnSession != nil {
		a.cfg.OnSession(msg)
	}
}

// NodeUpdate is what a session message told the agent about its node: the
// node object as the managers record it (its desired role among others;
// nil until a manager sent it) and the manager addresses now known.
type NodeUpdate struct {
	Node     *api.Node
	Managers []string
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

// logTaskDBLoad tells the operator what opening the task db had to repair.
func (a *Agent) logTaskDBLoad(path string, load *taskDBLoad) {
	if load.movedAside != "" {
		a.log.Warn("the task db is damaged: moved it aside and started a new one; "+recoveryHint+
			" once a manager answers. The moved file is kept only for diagnosis and may be deleted",
			"file", path, "damage", load.damage, "moved_to", load.movedAside)
	}
	for _, r := range load.dropped {
		a.log.Warn("dropped a task db record that does not decode; the task comes back from the managers' assignments and containerd's containers",
			"file", path, "task", r.ID, "value", r.Value, "err", r.Detail)
	}
	if load.sealed > 0 {
		a.log.Info("sealed the task db's plaintext records with the task db key", "file", path, "tasks", load.sealed)
	}
	a.rebuilding.Store(load.rebuilding())
}

// RetryNow cuts short the session loop's wait before its next attempt and
// resets its backoff: the node has seen evidence that the network is back
// (its gossip peers answered again after a partition), so waiting out a
// backoff that grew during the partition (up to BackoffMax) would only keep
// the node's replaced tasks serving longer. Safe to call at any time.
func (a *Agent) RetryNow() {
	select {
	case a.retry <- struct{}{}:
	default:
	}
}
