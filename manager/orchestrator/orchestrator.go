package orchestrator

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/internal/batch"
	"github.com/shoal-project/shoal/manager/reconcile"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Orchestrator keeps every service's tasks in line with its spec. It runs on
// the leader only, on a reconcile.Driver keyed by service ID: every service
// from a full snapshot at start (and after a cut-off watch), then each
// service touched by an event, and services whose restart delay runs out.
type Orchestrator struct {
	store *raftstore.Store
	clock clockwork.Clock
	log   *slog.Logger
}

// New returns an orchestrator over the store.
func New(store *raftstore.Store, clock clockwork.Clock, log *slog.Logger) *Orchestrator {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	if log == nil {
		log = slog.Default()
	}
	return &Orchestrator{store: store, clock: clock, log: log.With("component", "orchestrator")}
}

// Run reconciles until ctx ends. A service whose write failed waits before
// its next attempt, longer after each failure (minRetry doubling up to
// maxRetry), and never holds up the other services; after a write whose
// outcome is unknown, the next pass first syncs the store, so a slot's task
// is never created twice.
func (o *Orchestrator) Run(ctx context.Context) error {
	return reconcile.New(reconcile.Config{
		Name:          "orchestrator",
		Store:         o.store,
		Kinds:         []string{raftstore.KindService, raftstore.KindTask, raftstore.KindNode, raftstore.KindCluster},
		Clock:         o.clock,
		Log:           o.log,
		MinRetry:      minRetry,
		MaxRetry:      maxRetry,
		SettleUnknown: true,
	}, handler{o}).Run(ctx)
}

// handler adapts the orchestrator to the reconcile driver.
type handler struct{ o *Orchestrator }

func (h handler) Snapshot(tx raftstore.ReadTx, mark func(string)) {
	for _, s := range tx.Services() {
		mark(s.Id)
	}
	for _, t := range tx.Tasks() {
		mark(t.ServiceId)
	}
}

func (h handler) Event(ev raftstore.Event, mark func(string)) {
	switch ev.Kind {
	case raftstore.KindService:
		mark(ev.Object.GetId())
	case raftstore.KindTask:
		t := ev.Object.(*api.Task)
		if old, ok := ev.Old.(*api.Task); ok && ev.Action == raftstore.ActionUpdate && !taskChangeMatters(old, t) {
			return
		}
		mark(t.ServiceId)
	case raftstore.KindNode, raftstore.KindCluster:
		// Node availability, status or labels can move tasks of any
		// service (global ones especially).
		h.o.store.View(func(tx raftstore.ReadTx) {
			for _, s := range tx.Services() {
				mark(s.Id)
			}
		})
	}
}

// taskChangeMatters tells whether an update of a task can change what
// Reconcile decides for its service; most task writes are an agent's
// progress reports (ACCEPTED, PREPARING, STARTING), and reconciling a
// service re-reads all its tasks. Reconcile tells tasks apart by node,
// desired state, spec version and job iteration, and by observed state
// only as: before ASSIGNED, ASSIGNED up to RUNNING, RUNNING (whose time
// starts an update's monitor), and each terminal state.
func taskChangeMatters(old, cur *api.Task) bool {
	if old.NodeId != cur.NodeId || old.DesiredState != cur.DesiredState || old.SpecVersion != cur.SpecVersion ||
		old.JobIteration != cur.JobIteration || old.ServiceId != cur.ServiceId {
		return true
	}
	a, b := old.GetStatus().GetState(), cur.GetStatus().GetState()
	switch {
	case a == b:
		return a == api.TaskState_RUNNING && !proto.Equal(old.GetStatus().GetTimestamp(), cur.GetStatus().GetTimestamp())
	case a < api.TaskState_ASSIGNED && b < api.TaskState_ASSIGNED:
		return false
	case a >= api.TaskState_ASSIGNED && a < api.TaskState_RUNNING && b >= api.TaskState_ASSIGNED && b < api.TaskState_RUNNING:
		return false
	}
	return true
}

// Reconcile reconciles each service in its own transactions; a service
// whose write failed is reported to be retried.
func (h handler) Reconcile(ctx context.Context, ids []string, out *reconcile.Outcome) {
	o := h.o
	var nodes map[string]*api.Node
	history := 0
	o.store.View(func(tx raftstore.ReadTx) {
		nodes = map[string]*api.Node{}
		for _, n := range tx.Nodes() {
			nodes[n.Id] = n
		}
		if cs := tx.Clusters(); len(cs) > 0 {
			history = int(cs[0].GetSpec().GetOrchestration().GetTaskHistoryRetentionLimit())
		}
	})
	for _, id := range ids {
		in := Input{ServiceID: id, Nodes: nodes, History: history, Now: o.clock.Now()}
		o.store.View(func(tx raftstore.ReadTx) {
			in.Service = tx.Service(id)
			in.Tasks = tx.TasksByService(id)
		})
		acts := Reconcile(in)
		if !acts.WakeAt.IsZero() {
			out.WakeAt(id, acts.WakeAt)
		}
		if acts.Empty() {
			continue
		}
		if err := o.apply(ctx, acts); err != nil {
			out.Fail(id, fmt.Errorf("service %s: reconcile write failed: %w", id, err))
		}
	}
}

// Pacing of retries after failed writes.
const (
	minRetry = 50 * time.Millisecond
	maxRetry = 5 * time.Second
)

// Transactions are cut by count and by bytes (raftstore.BatchItems and
// BatchBytes), so that a service of any accepted spec size can be scaled
// to any replica count.

func (o *Orchestrator) apply(ctx context.Context, a Actions) error {
	type op struct {
		kind int // 0 create, 1 update, 2 delete
		t    *api.Task
	}
	var ops []op
	if a.Service != nil {
		// The service first, in the first transaction, so a stale read of
		// it fails everything decided from it.
		ops = append(ops, op{3, nil})
	}
	for _, t := range a.Update {
		ops = append(ops, op{1, t})
	}
	for _, t := range a.Create {
		ops = append(ops, op{0, t})
	}
	for _, t := range a.Delete {
		ops = append(ops, op{2, t})
	}
	size := func(o op) int {
		if o.kind == 3 {
			return proto.Size(a.Service)
		}
		return proto.Size(o.t)
	}
	for _, part := range batch.Cut(ops, size, raftstore.BatchItems, raftstore.BatchBytes) {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := o.store.Update(wctx, func(tx *raftstore.Tx) error {
			for _, op := range part {
				var err error
				switch op.kind {
				case 0:
					err = tx.Create(op.t)
				case 1:
					err = tx.Update(op.t)
				case 2:
					if tx.Task(op.t.Id) == nil {
						continue
					}
					err = tx.Delete(op.t)
				case 3:
					err = tx.Update(a.Service)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}
