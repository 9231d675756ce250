package orchestrator

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/internal/batch"
	"github.com/shoal-project/shoal/manager/allocator"
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

	// noQuiet turns the quiet-event filter off (quiet.go), for tests and
	// benchmarks that compare with and without it.
	noQuiet bool
	// watchBuffer, when set, replaces the watch buffer (benchmarks).
	watchBuffer int
	// stats counts the work of Run's passes (read by tests and benchmarks).
	stats passStats
	// placer, when set, places the tasks a pass creates (see Placer).
	placer Placer
}

// Placer plans nodes for tasks about to be created: the scheduling loop
// (schedloop.Loop.PlaceNew). nodes maps the IDs of the tasks it placed to
// their nodes; done must be called once the creating transaction has
// committed or failed.
type Placer interface {
	PlaceNew(ctx context.Context, tasks []*api.Task) (nodes map[string]string, done func())
}

// WithPlacer makes the orchestrator create the tasks that need nothing from
// the allocator already ASSIGNED to the nodes p plans for them, when the
// node is still READY and ACTIVE in the creating transaction: a task then
// costs the scheduler no write of its own. Tasks p does not place are
// created PENDING for the scheduling loop, as without a placer.
func (o *Orchestrator) WithPlacer(p Placer) *Orchestrator {
	o.placer = p
	return o
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
		WatchBuffer:   o.watchBuffer, // 0: the driver's default
	}, newHandler(o)).Run(ctx)
}

// handler adapts the orchestrator to the reconcile driver. Its state is
// owned by the driver's goroutine.
type handler struct {
	o *Orchestrator
	// quiet is, per service, what its last pass that had nothing to write
	// found, while only quiet events followed it (quiet.go).
	quiet map[string]*quietState
}

func newHandler(o *Orchestrator) *handler {
	return &handler{o: o, quiet: map[string]*quietState{}}
}

func (h *handler) Snapshot(tx raftstore.ReadTx, mark func(string)) {
	clear(h.quiet)
	h.o.stats.snapshots.Add(1)
	for _, s := range tx.Services() {
		mark(s.Id)
	}
	for _, t := range tx.Tasks() {
		mark(t.ServiceId)
	}
}

func (h *handler) Event(ev raftstore.Event, mark func(string)) {
	switch ev.Kind {
	case raftstore.KindService:
		delete(h.quiet, ev.Object.GetId())
		mark(ev.Object.GetId())
	case raftstore.KindTask:
		t := ev.Object.(*api.Task)
		if q := h.quiet[t.ServiceId]; q != nil && ev.Action == raftstore.ActionCreate && q.created(t) {
			q.note(t.NodeId)
			mark(t.ServiceId)
			return
		}
		if old, ok := ev.Old.(*api.Task); ok && ev.Action == raftstore.ActionUpdate {
			if !taskChangeMatters(old, t) {
				return
			}
			if q := h.quiet[t.ServiceId]; q != nil && q.holds(old, t) {
				q.note(t.NodeId)
				mark(t.ServiceId)
				return
			}
		}
		delete(h.quiet, t.ServiceId)
		mark(t.ServiceId)
	case raftstore.KindNode:
		// A node's status, availability or labels matter to the services
		// with tasks on it (moved off, reaped) and to every global service
		// (its nodes are its slots); to no other.
		h.o.store.View(func(tx raftstore.ReadTx) {
			for _, s := range tx.Services() {
				if s.GetSpec().IsGlobal() {
					delete(h.quiet, s.Id)
					mark(s.Id)
				}
			}
			for _, t := range tx.TasksByNode(ev.Object.GetId()) {
				delete(h.quiet, t.ServiceId)
				mark(t.ServiceId)
			}
		})
	case raftstore.KindCluster:
		// The task history limit.
		clear(h.quiet)
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
//
// A service marked only by quiet events since a pass that had nothing to
// write is not read again (quiet.go): that pass's answer stands.
//
// Services are decided one after another, and up to writeConcurrency of
// their writes are in flight at once: each waits for its raft commit, and
// one at a time made a pass over 1,000 new services 1,000 round trips
// long. Writes of different services never touch the same objects; the
// handler's state is only changed here, on the driver's goroutine.
func (h *handler) Reconcile(ctx context.Context, ids []string, out *reconcile.Outcome) {
	o := h.o
	var nodes map[string]*api.Node
	history := 0
	// written is the outcome of a service's write.
	type written struct {
		id  string
		err error
	}
	settle := func(w written) {
		if w.err != nil {
			// Its quiet state, taken before the write, would let the
			// retry be skipped.
			delete(h.quiet, w.id)
			out.Fail(w.id, fmt.Errorf("service %s: reconcile write failed: %w", w.id, w.err))
		}
	}
	quietAfter := func(in Input, acts Actions) *quietState {
		if o.noQuiet || len(acts.Update)+len(acts.Delete) > 0 || acts.Service != nil {
			return nil
		}
		return newQuietState(in, acts.Create, acts.WakeAt)
	}
	// While it waits for writes, the pass takes the watch's events
	// (reconcile.Outcome.Events): a service scaled by 1,000,000 is one
	// write of minutes, during which its own creates and their RUNNING
	// reports would fill the watch's buffer, cut the watch off and have
	// the next pass read every task again.
	writes := batch.NewInFlight(writeConcurrency, settle).Serve(out.Events())
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			// Leadership ended: a deposed leader reading and deciding
			// services for nothing would hold its stop up and take CPU
			// from the new leader.
			out.Fail(id, err)
			continue
		}
		now := o.clock.Now()
		if q := h.quiet[id]; q != nil && q.stands(o.store, id, now) {
			o.stats.skipped.Add(1)
			if !q.wake.IsZero() {
				out.WakeAt(id, q.wake)
			}
			continue
		}
		if nodes == nil {
			nodes = map[string]*api.Node{}
			o.store.View(func(tx raftstore.ReadTx) {
				for _, n := range tx.Nodes() {
					nodes[n.Id] = n
				}
				if cs := tx.Clusters(); len(cs) > 0 {
					history = int(cs[0].GetSpec().GetOrchestration().GetTaskHistoryRetentionLimit())
				}
			})
		}
		in := Input{ServiceID: id, Nodes: nodes, History: history, Now: now}
		o.store.View(func(tx raftstore.ReadTx) {
			in.Service = tx.Service(id)
			in.Tasks = tx.TasksByService(id)
		})
		o.stats.passes.Add(1)
		o.stats.tasksRead.Add(uint64(len(in.Tasks)))
		acts := Reconcile(in)
		if !acts.WakeAt.IsZero() {
			out.WakeAt(id, acts.WakeAt)
		}
		// The quiet state stands from now, before the write: the events of
		// its own creates, taken during this pass, find it (quiet.go); a
		// failed write drops it.
		delete(h.quiet, id)
		if q := quietAfter(in, acts); q != nil {
			h.quiet[id] = q
		}
		if acts.Empty() {
			o.stats.idle.Add(1)
			continue
		}
		writes.Go(func() written { return written{id: id, err: o.apply(ctx, acts)} })
	}
	writes.Wait()
}

// pendingIfNothingToAllocate creates t PENDING, as the allocation loop
// would make it, when its service as of the creating transaction needs
// nothing from that loop (allocator.NothingToAllocate: no networks, no
// ingress port, endpoint settled): one write per task fewer, and a task that
// reaches the scheduler one raft round sooner. Other tasks stay NEW for
// the loop.
func pendingIfNothingToAllocate(tx raftstore.ReadTx, t *api.Task) {
	if svc := tx.Service(t.GetServiceId()); svc != nil {
		allocator.Pending(t, svc, t.GetStatus().GetTimestamp())
	}
}

// writeConcurrency bounds the services whose writes one pass has in
// flight at once.
const writeConcurrency = 16

// Pacing of retries after failed writes.
const (
	minRetry = 50 * time.Millisecond
	maxRetry = 5 * time.Second
)

// Transactions are cut by count and by bytes (raftstore.BatchItems and
// BatchBytes), so that a service of any accepted spec size can be scaled
// to any replica count.

// op is one write of apply.
type op struct {
	kind int // 0 create, 1 update, 2 delete, 3 the service
	t    *api.Task
}

// apply writes a. It takes a's tasks over: it clears a's slices (their
// arrays are the caller's too) and each part's once written, so that a
// service scaled by 1,000,000 does not keep the orchestrator's copy of
// every task (about 300 B each; the store holds its own) until its last
// part commits.
func (o *Orchestrator) apply(ctx context.Context, a Actions) error {
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
	clear(a.Update)
	clear(a.Create)
	clear(a.Delete)
	size := func(o op) int {
		if o.kind == 3 {
			return proto.Size(a.Service)
		}
		return proto.Size(o.t)
	}
	parts := batch.Cut(ops, size, raftstore.BatchItems, raftstore.BatchBytes)
	if a.Service != nil || len(a.Update) > 0 || len(a.Delete) > 0 {
		// In order, stopping at the first failure: the service first,
		// and what was decided from it only if it committed.
		for _, part := range parts {
			err := o.writePart(ctx, a.Service, part)
			clear(part)
			if err != nil {
				return err
			}
		}
		return nil
	}
	// Only creates, of distinct slots: the parts do not depend on one
	// another, so several are in flight (a service scaled by 100,000
	// waited for one raft commit per 1,000 tasks). A part that fails stops
	// the ones not started; the next pass creates what is missing (after
	// a write of unknown outcome, once the store has settled).
	var first error
	writes := batch.NewInFlight(createsInFlight, func(err error) {
		if first == nil {
			first = err
		}
	})
	for _, part := range parts {
		if first != nil {
			break
		}
		writes.Go(func() error {
			defer clear(part)
			return o.writePart(ctx, nil, part)
		})
	}
	writes.Wait()
	return first
}

// createsInFlight bounds the parts of one service's creates in flight.
const createsInFlight = 4

// writePart writes one transaction of apply's ops (svc: the service, for
// an op of kind 3).
func (o *Orchestrator) writePart(ctx context.Context, svc *api.Service, part []op) error {
	nodes, placed := o.placeNew(ctx, part)
	defer placed()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return o.store.Update(wctx, func(tx *raftstore.Tx) error {
		for _, op := range part {
			var err error
			switch op.kind {
			case 0:
				pendingIfNothingToAllocate(tx.ReadTx, op.t)
				assignIfPlaced(tx.ReadTx, op.t, nodes[op.t.Id])
				err = tx.Create(op.t)
			case 1:
				err = tx.Update(op.t)
			case 2:
				if tx.Task(op.t.Id) == nil {
					continue
				}
				err = tx.Delete(op.t)
			case 3:
				err = tx.Update(svc)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}
