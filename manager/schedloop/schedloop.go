// Package schedloop runs the pure scheduler against the store on the
// leader: it feeds store events into a scheduler.View, debounces them (50 ms
// quiet, at most 1 s), plans placements for pending tasks, re-checks each
// placement against the latest state and commits them in batches. Tasks that
// cannot be placed keep their PENDING state with the reason in their status
// error, and are planned again whenever nodes or resources change, so a task
// never stays pending after room appears.
//
// Loop.Run owns one goroutine and stops when its context ends.
package schedloop

import (
	"context"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	txbatch "github.com/shoal-project/shoal/internal/batch"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
	"github.com/shoal-project/shoal/scheduler"
)

// Debounce timings: a pass runs as soon as the event queue is drained after
// a commit, and at the latest after quietPeriod without events or maxDelay.
const (
	quietPeriod = 50 * time.Millisecond
	maxDelay    = time.Second
)

// Loop is the leader's scheduling loop.
type Loop struct {
	store *raftstore.Store
	clock clockwork.Clock
	log   *slog.Logger
}

// New returns a scheduling loop over the store.
func New(store *raftstore.Store, clock clockwork.Clock, log *slog.Logger) *Loop {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	if log == nil {
		log = slog.Default()
	}
	return &Loop{store: store, clock: clock, log: log.With("component", "scheduler")}
}

// wantsPlacement: pending and meant to run.
func wantsPlacement(t *api.Task) bool {
	return t.GetStatus().GetState() == api.TaskState_PENDING && t.DesiredState <= api.TaskState_COMPLETE
}

// Run schedules until ctx ends; a watch cut off for falling behind restarts
// from a full snapshot.
func (l *Loop) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		view := scheduler.NewView()
		pending := map[string]*api.Task{}
		w := l.store.ViewAndWatch(raftstore.WatchOptions{Kinds: []string{raftstore.KindTask, raftstore.KindNode}, Commits: true},
			func(tx raftstore.ReadTx) {
				for _, n := range tx.Nodes() {
					view.UpsertNode(n)
				}
				for _, t := range tx.Tasks() {
					view.UpsertTask(t)
					if wantsPlacement(t) {
						pending[t.Id] = t
					}
				}
			})
		err := l.loop(ctx, w, view, pending)
		w.Close()
		if ctx.Err() == nil {
			l.log.Warn("scheduler restarting from a full snapshot", "err", err)
		}
	}
	return nil
}

func (l *Loop) loop(ctx context.Context, w *raftstore.Watcher, view *scheduler.View, pending map[string]*api.Task) error {
	var quiet, deadline <-chan time.Time
	arm := func() {
		quiet = l.clock.After(quietPeriod)
		if deadline == nil {
			deadline = l.clock.After(maxDelay)
		}
	}
	if len(pending) > 0 {
		arm()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.C:
			if !ok {
				return w.Err()
			}
			if l.feed(ev, view, pending) {
				arm()
			}
			// Adaptive batching: once the queue of events is drained,
			// plan now instead of waiting out the quiet period; under a
			// stream of events, the queue is rarely empty and plans batch
			// up to the maximum delay.
			if quiet != nil && len(w.C) == 0 && ev.Action == raftstore.ActionCommit {
				quiet, deadline = nil, nil
				l.schedule(ctx, view, pending)
			}
		case <-quiet:
			quiet, deadline = nil, nil
			l.schedule(ctx, view, pending)
		case <-deadline:
			quiet, deadline = nil, nil
			l.schedule(ctx, view, pending)
		}
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
		// A task that stopped holding resources may make room.
		return len(pending) > 0 && old != nil && old.GetStatus().GetState() <= api.TaskState_RUNNING && o.GetStatus().GetState() > api.TaskState_RUNNING
	}
	return false
}

func (l *Loop) schedule(ctx context.Context, view *scheduler.View, pending map[string]*api.Task) {
	if len(pending) == 0 {
		return
	}
	list := make([]*api.Task, 0, len(pending))
	for _, t := range pending {
		list = append(list, t)
	}
	sortTasks(list)
	plan := view.Schedule(list, l.clock.Now())
	now := timestamppb.New(l.clock.Now())
	// Each placement writes the whole task: batches are cut by bytes too.
	assignedSize := func(a scheduler.Assignment) int { return proto.Size(pending[a.TaskID]) }
	for _, batch := range txbatch.Cut(plan.Assigned, assignedSize, raftstore.BatchItems, raftstore.BatchBytes) {
		var committed []*api.Task
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := l.store.Update(wctx, func(tx *raftstore.Tx) error {
			committed = committed[:0]
			for _, a := range batch {
				t := tx.Task(a.TaskID)
				n := tx.Node(a.NodeID)
				// Re-check against the latest state (optimistic planning).
				if t == nil || !wantsPlacement(t) || n == nil || n.GetStatus().GetState() != api.NodeStatus_READY {
					continue
				}
				c := proto.Clone(t).(*api.Task)
				c.NodeId = a.NodeID
				c.Status = &api.TaskStatus{State: api.TaskState_ASSIGNED, Timestamp: now, Message: "scheduler assigned task to node"}
				if err := tx.Update(c); err != nil {
					return err
				}
				committed = append(committed, c)
			}
			return nil
		})
		cancel()
		if err != nil {
			l.log.Warn("committing placements failed; they will be planned again", "tasks", len(batch), "err", err)
			// Release what the view charged for this batch.
			l.store.View(func(tx raftstore.ReadTx) {
				for _, a := range batch {
					if t := tx.Task(a.TaskID); t != nil {
						view.UpsertTask(t)
					} else {
						view.RemoveTask(a.TaskID)
					}
				}
			})
			continue
		}
		for _, a := range batch {
			delete(pending, a.TaskID)
		}
	}
	l.recordUnplaced(ctx, plan.Unplaced, now)
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
				c := proto.Clone(t).(*api.Task)
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
