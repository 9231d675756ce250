// Package allocator moves new tasks from NEW to PENDING once the resources
// they need from the cluster are allocated. Today tasks need nothing from
// the cluster (each node addresses its own tasks on its local bridge), so
// allocation is immediate; overlay addresses, VIPs and published ports will
// be allocated here. It runs on the leader only, on a reconcile.Driver (one
// goroutine owned by Run), and starts with a full pass over the store so
// nothing is missed.
package allocator

import (
	"context"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/internal/batch"
	"github.com/shoal-project/shoal/manager/reconcile"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Allocator is the NEW -> PENDING loop.
type Allocator struct {
	store *raftstore.Store
	clock clockwork.Clock
	log   *slog.Logger
}

// New returns an allocator over the store.
func New(store *raftstore.Store, clock clockwork.Clock, log *slog.Logger) *Allocator {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	if log == nil {
		log = slog.Default()
	}
	return &Allocator{store: store, clock: clock, log: log.With("component", "allocator")}
}

// Run allocates until ctx ends, on a reconcile.Driver keyed by task ID: a
// batch whose write fails is retried with backoff.
func (a *Allocator) Run(ctx context.Context) error {
	return reconcile.New(reconcile.Config{
		Name:  "allocator",
		Store: a.store,
		Kinds: []string{raftstore.KindTask},
		Clock: a.clock,
		Log:   a.log,
	}, handler{a}).Run(ctx)
}

// handler adapts the allocator to the reconcile driver.
type handler struct{ a *Allocator }

func (h handler) Snapshot(tx raftstore.ReadTx, mark func(string)) {
	for _, t := range tx.Tasks() {
		if t.GetStatus().GetState() == api.TaskState_NEW {
			mark(t.Id)
		}
	}
}

func (h handler) Event(ev raftstore.Event, mark func(string)) {
	if t, isTask := ev.Object.(*api.Task); isTask && ev.Action != raftstore.ActionDelete && t.GetStatus().GetState() == api.TaskState_NEW {
		mark(t.Id)
	}
}

func (h handler) Reconcile(ctx context.Context, ids []string, out *reconcile.Outcome) {
	for id, err := range h.a.allocate(ctx, ids) {
		out.Fail(id, err)
	}
}

// allocate moves the tasks still NEW among ids to PENDING, in batches, and
// returns the tasks of batches whose write failed, with the error.
func (a *Allocator) allocate(ctx context.Context, ids []string) map[string]error {
	now := timestamppb.New(a.clock.Now())
	failed := map[string]error{}
	// Each write carries the whole task: batches are cut by bytes too.
	sizes := map[string]int{}
	a.store.View(func(tx raftstore.ReadTx) {
		for _, id := range ids {
			if t := tx.Task(id); t != nil {
				sizes[id] = proto.Size(t)
			}
		}
	})
	for _, part := range batch.Cut(ids, func(id string) int { return sizes[id] }, raftstore.BatchItems, raftstore.BatchBytes) {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := a.store.Update(wctx, func(tx *raftstore.Tx) error {
			for _, id := range part {
				t := tx.Task(id)
				if t == nil || t.GetStatus().GetState() != api.TaskState_NEW {
					continue
				}
				t = proto.Clone(t).(*api.Task)
				t.Status = &api.TaskStatus{State: api.TaskState_PENDING, Timestamp: now, Message: "pending task scheduling"}
				if err := tx.Update(t); err != nil {
					return err
				}
			}
			return nil
		})
		cancel()
		if err != nil {
			for _, id := range part {
				failed[id] = err
			}
		}
	}
	return failed
}
