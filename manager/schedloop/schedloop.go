// Package schedloop runs the pure scheduler against the store on the
// leader: it feeds store events into a scheduler.View, plans placements for
// pending tasks once the event queue is drained (at most 1 s late under a
// stream of events), re-checks each placement against the latest state and
// commits them in batches; a batch whose write fails is planned again after
// a backoff. Tasks that cannot be placed keep their PENDING state with the
// reason in their status error, and are planned again whenever nodes or
// resources change, so a task never stays pending after room appears.
//
// The loop also plans tasks before they exist (Loop.PlaceNew, placenew.go):
// the orchestrator creates them ASSIGNED to the planned nodes, saving the
// loop's own write; the plan holds its room in the view until the
// creating transaction is over.
//
// Loop.Run drives the loop on a reconcile.Driver keyed by task ID (one
// goroutine, which owns the view) and stops when its context ends. Other
// goroutines reach the view only through calls run on that goroutine
// (reconcile.Config.Calls, and while a pass waits for its writes); PlaceNew
// waits for its answer at most placeNewWait.
package schedloop

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	txbatch "github.com/shoal-project/shoal/internal/batch"
	"github.com/shoal-project/shoal/manager/reconcile"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
	"github.com/shoal-project/shoal/scheduler"
)

// maxDelay bounds how long a stream of events puts a pass off; without one,
// a pass runs as soon as the event queue is drained after a commit.
const maxDelay = time.Second

// Loop is the leader's scheduling loop.
type Loop struct {
	store *raftstore.Store
	clock clockwork.Clock
	log   *slog.Logger
	m     *Metrics // nil: none kept

	// PlaceNew's way in (placenew.go): calls run on the loop's goroutine,
	// which owns cur (the running handler, nil when stopped).
	calls   chan func()
	running atomic.Bool
	cur     *handler
}

// callQueue bounds the calls waiting for the loop.
const callQueue = 64

// WithMetrics makes the loop record its figures in m.
func (l *Loop) WithMetrics(m *Metrics) *Loop {
	l.m = m
	return l
}

// New returns a scheduling loop over the store.
func New(store *raftstore.Store, clock clockwork.Clock, log *slog.Logger) *Loop {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	if log == nil {
		log = slog.Default()
	}
	return &Loop{store: store, clock: clock, log: log.With("component", "scheduler"), calls: make(chan func(), callQueue)}
}

// wantsPlacement: pending and meant to run.
func wantsPlacement(t *api.Task) bool {
	return t.GetStatus().GetState() == api.TaskState_PENDING && t.DesiredState <= api.TaskState_COMPLETE
}

// Run schedules until ctx ends; a watch cut off for falling behind restarts
// from a full snapshot.
func (l *Loop) Run(ctx context.Context) error {
	defer l.m.reset() // a follower has no unplaced tasks to report
	l.cur = &handler{l: l}
	l.running.Store(true)
	defer func() {
		l.running.Store(false)
		l.cur = nil
		// Calls queued for this run are dropped: the next run starts
		// from a snapshot of the store.
		for {
			select {
			case <-l.calls:
			default:
				return
			}
		}
	}()
	return reconcile.New(reconcile.Config{
		Name:     "scheduler",
		Store:    l.store,
		Kinds:    []string{raftstore.KindTask, raftstore.KindNode},
		Clock:    l.clock,
		Log:      l.log,
		MaxDelay: maxDelay,
		Calls:    l.calls,
	}, l.cur).Run(ctx)
}

// handler adapts the loop to the reconcile driver. Its view and pending set
// are rebuilt from each snapshot and kept up to date by events. A task that
// becomes pending is marked; a change that may make room (a node change, a
// task that stopped or was removed) marks every pending task, once per
// pass. Tasks whose write failed wait out a backoff.
type handler struct {
	l       *Loop
	view    *scheduler.View
	pending map[string]*api.Task
	// all: every pending task was marked since the last pass.
	all bool
	// mark is the driver's (from Snapshot), for calls (placenew.go).
	mark func(string)
	// inPass: Reconcile runs (calls served meanwhile must not mark the
	// pass's own keys, whose marks the driver clears after the pass);
	// replan: such a call freed room, so every pending task is planned
	// again after the pass.
	inPass, replan bool
}

func (h *handler) Snapshot(tx raftstore.ReadTx, mark func(string)) {
	h.mark = mark
	h.view = scheduler.NewView()
	h.pending = map[string]*api.Task{}
	h.l.m.reset()
	for _, n := range tx.Nodes() {
		h.view.UpsertNode(n)
	}
	for _, t := range tx.Tasks() {
		h.view.UpsertTask(t)
		if wantsPlacement(t) {
			h.pending[t.Id] = t
			mark(t.Id)
		}
	}
	h.all = true
}

func (h *handler) Event(ev raftstore.Event, mark func(string)) {
	worth := h.l.feed(ev, h.view, h.pending)
	if t, ok := ev.Object.(*api.Task); ok && ev.Action != raftstore.ActionDelete && wantsPlacement(t) {
		// A new pending task takes room and frees none: the others
		// would be planned as before.
		mark(t.Id)
		return
	}
	if worth {
		h.markAll()
	}
}

func (h *handler) Reconcile(ctx context.Context, ids []string, out *reconcile.Outcome) {
	h.all = false
	batch := make(map[string]*api.Task, len(ids))
	for _, id := range ids {
		if t, ok := h.pending[id]; ok {
			batch[id] = t
		}
	}
	h.inPass = true
	failed, again := h.l.schedule(ctx, h.view, batch) // drops the placed tasks from batch
	h.inPass = false
	for _, id := range ids {
		if _, left := batch[id]; !left {
			delete(h.pending, id)
		}
	}
	for id, err := range failed {
		out.Fail(id, err)
	}
	if len(again) > 0 {
		now := h.l.clock.Now()
		for _, id := range again {
			out.WakeAt(id, now)
		}
	}
	if h.replan {
		h.replan = false
		now := h.l.clock.Now()
		for _, id := range ids {
			if _, left := h.pending[id]; left && failed[id] == nil {
				out.WakeAt(id, now) // this pass's keys: due again at once
			}
		}
		h.markAll()
	}
}

// markAll marks every pending task for the next pass (once per pass).
func (h *handler) markAll() {
	if h.all {
		return
	}
	h.all = true
	for id := range h.pending {
		h.mark(id)
	}
}

// feed applies one event to the view and the pending set; true when a
// scheduling pass is worth running.
func (l *Loop) feed(ev raftstore.Event, view *scheduler.View, pending map[string]*api.Task) bool {
	switch o := ev.Object.(type) {
	case *api.Node:
		if ev.Action == raftstore.ActionDelete {
			view.RemoveNode(o.Id)
		} else {
			view.UpsertNode(o)
		}
		return len(pending) > 0
	case *api.Task:
		if ev.Action == raftstore.ActionDelete {
			view.RemoveTask(o.Id)
			delete(pending, o.Id)
			l.m.unplaced(o.Id, "")
			return len(pending) > 0
		}
		old, _ := ev.Old.(*api.Task)
		if (o.GetStatus().GetState() == api.TaskState_FAILED || o.GetStatus().GetState() == api.TaskState_REJECTED) &&
			(old == nil || old.GetStatus().GetState() != o.GetStatus().GetState()) && o.NodeId != "" {
			view.RecordFailure(o.ServiceId, o.NodeId, l.clock.Now())
		}
		view.UpsertTask(o)
		if wantsPlacement(o) {
			pending[o.Id] = o
			return true
		}
		delete(pending, o.Id)
		l.m.unplaced(o.Id, "")
		// A task that stopped holding resources may make room.
		return len(pending) > 0 && old != nil && old.GetStatus().GetState() <= api.TaskState_RUNNING && o.GetStatus().GetState() > api.TaskState_RUNNING
	}
	return false
}

// schedule plans pending, commits the placements in batches, drops the
// placed tasks from pending, records why the others wait, and returns the
// tasks of batches whose write failed (planned again after a backoff),
// with the error, and those whose write found their node gone or no
// longer READY (planned again at once; they stay in pending).
func (l *Loop) schedule(ctx context.Context, view *scheduler.View, pending map[string]*api.Task) (failed map[string]error, again []string) {
	failed = map[string]error{}
	if len(pending) == 0 {
		return failed, nil
	}
	list := make([]*api.Task, 0, len(pending))
	for _, t := range pending {
		list = append(list, t)
	}
	sortTasks(list)
	start := l.clock.Now()
	defer func() { l.m.pass(l.clock.Since(start)) }()
	plan := view.Schedule(list, l.clock.Now())
	now := timestamppb.New(l.clock.Now())
	// Each placement writes the whole task: batches are cut by bytes too.
	assignedSize := func(a scheduler.Assignment) int { return proto.Size(pending[a.TaskID]) }
	// Batches are written up to writeConcurrency at a time: each waits
	// for its raft commit, and one after another they held placements to
	// one commit round trip per 1,000 tasks. Batches hold distinct tasks,
	// and each re-checks its tasks and nodes in its own transaction.
	type written struct {
		batch     []scheduler.Assignment
		committed int
		// skipped: assignments the write left out because their node
		// was gone or not READY in the store (the view learns it by an
		// event that may still be on its way); their tasks still wait.
		skipped []scheduler.Assignment
		err     error
	}
	// release makes the view agree with the store about assignments it
	// was charged for and that were not written.
	release := func(as []scheduler.Assignment) {
		l.store.View(func(tx raftstore.ReadTx) {
			for _, a := range as {
				if t := tx.Task(a.TaskID); t != nil {
					view.UpsertTask(t)
				} else {
					view.RemoveTask(a.TaskID)
				}
				if n := tx.Node(a.NodeID); n != nil {
					view.UpsertNode(n)
				} else {
					view.RemoveNode(a.NodeID)
				}
			}
		})
	}
	settle := func(w written) {
		if w.err != nil {
			for _, a := range w.batch {
				failed[a.TaskID] = fmt.Errorf("committing placements failed; they will be planned again: %w", w.err)
			}
			release(w.batch)
			return
		}
		skipped := make(map[string]bool, len(w.skipped))
		for _, a := range w.skipped {
			skipped[a.TaskID] = true
			again = append(again, a.TaskID)
		}
		for _, a := range w.batch {
			if !skipped[a.TaskID] {
				delete(pending, a.TaskID)
				l.m.unplaced(a.TaskID, "")
			}
		}
		release(w.skipped)
		l.m.committed(w.committed)
	}
	writes := txbatch.NewInFlight(writeConcurrency, settle).Serve(l.calls)
	for _, batch := range txbatch.Cut(plan.Assigned, assignedSize, raftstore.BatchItems, raftstore.BatchBytes) {
		writes.Go(func() written {
			n, skipped, err := l.place(ctx, batch, now)
			return written{batch: batch, committed: n, skipped: skipped, err: err}
		})
	}
	writes.Wait()
	for _, u := range plan.Unplaced {
		l.m.unplaced(u.TaskID, u.Cause)
	}
	l.recordUnplaced(ctx, plan.Unplaced, now)
	return failed, again
}

// writeConcurrency bounds the placement batches one pass has in flight.
const writeConcurrency = 4

// place commits one batch of placements, re-checked against the latest
// state (optimistic planning), and returns how many it wrote and the
// assignments it left out whose task still waits for a node (theirs is
// gone or not READY). A task that no longer waits is left out silently:
// its own event tells the loop.
func (l *Loop) place(ctx context.Context, batch []scheduler.Assignment, now *timestamppb.Timestamp) (int, []scheduler.Assignment, error) {
	committed := 0
	var skipped []scheduler.Assignment
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := l.store.Update(wctx, func(tx *raftstore.Tx) error {
		committed, skipped = 0, skipped[:0]
		for _, a := range batch {
			t := tx.Task(a.TaskID)
			if t == nil || !wantsPlacement(t) {
				continue
			}
			if n := tx.Node(a.NodeID); n == nil || n.GetStatus().GetState() != api.NodeStatus_READY {
				skipped = append(skipped, a)
				continue
			}
			c := raftstore.CloneTask(t)
			c.NodeId = a.NodeID
			c.Status = &api.TaskStatus{State: api.TaskState_ASSIGNED, Timestamp: now, Message: "scheduler assigned task to node"}
			if err := tx.Update(c); err != nil {
				return err
			}
			committed++
		}
		return nil
	})
	return committed, skipped, err
}

// recordUnplaced writes the reason a task waits into its status, only when
// it changed (so an idle cluster does not write every pass).
func (l *Loop) recordUnplaced(ctx context.Context, unplaced []scheduler.Unplaced, now *timestamppb.Timestamp) {
	var changed []scheduler.Unplaced
	for _, u := range unplaced {
		if u.Task.GetStatus().GetErr() != u.Reason {
			changed = append(changed, u)
		}
	}
	unplacedSize := func(u scheduler.Unplaced) int { return proto.Size(u.Task) }
	for _, batch := range txbatch.Cut(changed, unplacedSize, raftstore.BatchItems, raftstore.BatchBytes) {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := l.store.Update(wctx, func(tx *raftstore.Tx) error {
			for _, u := range batch {
				t := tx.Task(u.TaskID)
				if t == nil || !wantsPlacement(t) || t.GetStatus().GetErr() == u.Reason {
					continue
				}
				c := raftstore.CloneTask(t)
				c.Status = proto.Clone(t.Status).(*api.TaskStatus)
				c.Status.Err = u.Reason
				c.Status.Timestamp = now
				if err := tx.Update(c); err != nil {
					return err
				}
			}
			return nil
		})
		cancel()
		if err != nil {
			l.log.Debug("recording scheduling reasons failed", "err", err)
		}
	}
}
