package orchestrator

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Orchestrator keeps every service's tasks in line with its spec. It runs on
// the leader only: Run reconciles every service from a full snapshot at
// start, then each service touched by an event, and services whose restart
// delay runs out.
type Orchestrator struct {
	store *raftstore.Store
	clock clockwork.Clock
	log   *slog.Logger
	// unsettled: a write failed without a verdict (deadline, leadership
	// change) and may still commit; the next pass syncs first.
	unsettled bool
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

// Run reconciles until ctx ends. A watch cut off for falling behind restarts
// with a full reconcile, so nothing is missed.
func (o *Orchestrator) Run(ctx context.Context) error {
	for {
		err := o.run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		o.log.Warn("orchestrator restarting from a full snapshot", "err", err)
	}
}

func (o *Orchestrator) run(ctx context.Context) error {
	dirty := map[string]bool{}
	w := o.store.ViewAndWatch(raftstore.WatchOptions{
		Kinds:   []string{raftstore.KindService, raftstore.KindTask, raftstore.KindNode, raftstore.KindCluster},
		Commits: true,
	}, func(tx raftstore.ReadTx) {
		for _, s := range tx.Services() {
			dirty[s.Id] = true
		}
		for _, t := range tx.Tasks() {
			dirty[t.ServiceId] = true
		}
	})
	defer w.Close()
	wake := map[string]time.Time{}
	timer := o.clock.NewTimer(time.Hour)
	defer timer.Stop()
	var retry <-chan time.Time
	for {
		if len(dirty) > 0 && len(w.C) == 0 {
			failed := o.reconcileAll(ctx, dirty, wake)
			dirty = map[string]bool{}
			for id := range failed {
				dirty[id] = true
			}
			if len(failed) > 0 {
				retry = o.clock.After(50 * time.Millisecond)
			}
			resetTimer(timer, wake, o.clock.Now())
		}
		if len(dirty) > 0 && retry == nil && len(w.C) == 0 {
			retry = o.clock.After(50 * time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.C:
			if !ok {
				return w.Err()
			}
			o.mark(ev, dirty)
		case <-timer.Chan():
			now := o.clock.Now()
			for id, at := range wake {
				if !now.Before(at) {
					dirty[id] = true
					delete(wake, id)
				}
			}
			resetTimer(timer, wake, now)
		case <-retry:
			retry = nil
		}
	}
}

func (o *Orchestrator) mark(ev raftstore.Event, dirty map[string]bool) {
	switch ev.Kind {
	case raftstore.KindService:
		dirty[ev.Object.GetId()] = true
	case raftstore.KindTask:
		dirty[ev.Object.(*api.Task).ServiceId] = true
	case raftstore.KindNode, raftstore.KindCluster:
		// Node availability, status or labels can move tasks of any
		// service (global ones especially).
		o.store.View(func(tx raftstore.ReadTx) {
			for _, s := range tx.Services() {
				dirty[s.Id] = true
			}
		})
	}
}

func resetTimer(t clockwork.Timer, wake map[string]time.Time, now time.Time) {
	var next time.Time
	for _, at := range wake {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	d := time.Hour
	if !next.IsZero() {
		d = max(next.Sub(now), time.Millisecond)
	}
	t.Reset(d)
}

// reconcileAll reconciles each dirty service in its own transaction and
// returns the services whose write failed (to retry).
func (o *Orchestrator) reconcileAll(ctx context.Context, dirty map[string]bool, wake map[string]time.Time) map[string]bool {
	failed := map[string]bool{}
	ids := make([]string, 0, len(dirty))
	for id := range dirty {
		ids = append(ids, id)
	}
	sort.Strings(ids)
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
	if o.unsettled {
		// A write of an earlier pass may still commit: reconciling from a
		// store without it could create a slot's task a second time.
		if !o.sync(ctx) {
			return dirty
		}
		o.unsettled = false
	}
	for _, id := range ids {
		in := Input{ServiceID: id, Nodes: nodes, History: history, Now: o.clock.Now()}
		o.store.View(func(tx raftstore.ReadTx) {
			in.Service = tx.Service(id)
			in.Tasks = tx.TasksByService(id)
		})
		acts := Reconcile(in)
		if !acts.WakeAt.IsZero() {
			wake[id] = acts.WakeAt
		} else {
			delete(wake, id)
		}
		if acts.Empty() {
			continue
		}
		if err := o.apply(ctx, acts); err != nil {
			if !errdefs.IsConflict(err) && !errors.Is(err, context.Canceled) {
				o.log.Warn("reconcile write failed", "service", id, "err", err)
			}
			failed[id] = true
			o.unsettled = o.unsettled || !raftstore.IsVerdict(err)
		}
	}
	return failed
}

// maxActionsPerTx keeps transactions well under the size cap.
const maxActionsPerTx = 200

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
	for len(ops) > 0 {
		n := min(len(ops), maxActionsPerTx)
		batch := ops[:n]
		ops = ops[n:]
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := o.store.Update(wctx, func(tx *raftstore.Tx) error {
			for _, op := range batch {
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

// sync waits until every earlier write of the orchestrator was applied or
// dropped for good, and reports whether it could.
func (o *Orchestrator) sync(ctx context.Context) bool {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := o.store.Sync(sctx); err != nil {
		if ctx.Err() == nil {
			o.log.Warn("waiting for earlier writes to settle failed; retrying", "err", err)
		}
		return false
	}
	return true
}
