package orchestrator

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/batch"
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

	// lastErr is the last write error of each service that failed, so a
	// failure that repeats is logged once (owned by Run's goroutine).
	lastErr map[string]string
}

// New returns an orchestrator over the store.
func New(store *raftstore.Store, clock clockwork.Clock, log *slog.Logger) *Orchestrator {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	if log == nil {
		log = slog.Default()
	}
	return &Orchestrator{store: store, clock: clock, log: log.With("component", "orchestrator"), lastErr: map[string]string{}}
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
	// A service whose write failed waits before its next attempt, longer
	// after each failure: a write that cannot succeed is retried ever more
	// slowly, not in a busy loop, and never holds up the other services.
	notBefore := map[string]time.Time{}
	backoff := map[string]time.Duration{}
	// The retry timer is made on first need, not made and stopped here: a
	// test that counts the clock's waiters must never see a timer that is
	// about to go away.
	var retry clockwork.Timer
	var retryC <-chan time.Time
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		now := o.clock.Now()
		if len(w.C) == 0 {
			ready := map[string]bool{}
			for id := range dirty {
				if !now.Before(notBefore[id]) {
					ready[id] = true
				}
			}
			if len(ready) > 0 {
				failed := o.reconcileAll(ctx, ready, wake)
				now = o.clock.Now()
				for id := range ready {
					err, bad := failed[id]
					if !bad {
						delete(dirty, id)
						delete(notBefore, id)
						delete(backoff, id)
						continue
					}
					d := minRetry
					if !errdefs.IsConflict(err) { // a conflict is a race: retry soon
						d = min(max(2*backoff[id], minRetry), maxRetry)
					}
					backoff[id], notBefore[id] = d, now.Add(d)
				}
				resetTimer(timer, wake, now)
			}
		}
		if retry != nil {
			retry.Stop()
		}
		if next := earliest(dirty, notBefore); !next.IsZero() {
			d := max(next.Sub(now), time.Millisecond)
			if retry == nil {
				retry = o.clock.NewTimer(d)
				retryC = retry.Chan()
			} else {
				retry.Reset(d)
			}
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
		case <-retryC:
		}
	}
}

// earliest is the first time a dirty service waiting out a backoff may be
// retried; zero when none waits.
func earliest(dirty map[string]bool, notBefore map[string]time.Time) time.Time {
	var next time.Time
	for id := range dirty {
		if at, ok := notBefore[id]; ok && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	return next
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
// returns the services whose write failed, with the error (to retry).
func (o *Orchestrator) reconcileAll(ctx context.Context, dirty map[string]bool, wake map[string]time.Time) map[string]error {
	failed := map[string]error{}
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
			for id := range dirty {
				failed[id] = errUnsettled
			}
			return failed
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
			if !errdefs.IsConflict(err) && !errors.Is(err, context.Canceled) && o.lastErr[id] != err.Error() {
				o.log.Warn("reconcile write failed; retrying with backoff", "service", id, "err", err)
				o.lastErr[id] = err.Error()
			}
			failed[id] = err
			o.unsettled = o.unsettled || !raftstore.IsVerdict(err)
			continue
		}
		delete(o.lastErr, id)
	}
	return failed
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

// errUnsettled: a pass was put off until earlier writes settle.
var errUnsettled = errors.New("waiting for an earlier write whose outcome is unknown")

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
