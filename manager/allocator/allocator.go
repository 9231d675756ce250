// Package allocator moves new tasks from NEW to PENDING once the resources
// they need from the cluster are allocated. Today tasks need nothing from
// the cluster (each node addresses its own tasks on its local bridge), so
// allocation is immediate; overlay addresses, VIPs and published ports will
// be allocated here. It runs on the leader only, in one goroutine owned by
// Run, and starts with a full pass over the store so nothing is missed.
package allocator

import (
	"context"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/internal/batch"
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

// Run allocates until ctx ends.
func (a *Allocator) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		pending := map[string]bool{}
		w := a.store.ViewAndWatch(raftstore.WatchOptions{Kinds: []string{raftstore.KindTask}, Commits: true}, func(tx raftstore.ReadTx) {
			for _, t := range tx.Tasks() {
				if t.GetStatus().GetState() == api.TaskState_NEW {
					pending[t.Id] = true
				}
			}
		})
		err := a.loop(ctx, w, pending)
		w.Close()
		if ctx.Err() == nil {
			a.log.Warn("allocator restarting from a full snapshot", "err", err)
		}
	}
	return nil
}

func (a *Allocator) loop(ctx context.Context, w *raftstore.Watcher, pending map[string]bool) error {
	var retry <-chan time.Time
	for {
		if len(pending) > 0 && len(w.C) == 0 && retry == nil {
			if err := a.allocate(ctx, pending); err != nil {
				retry = a.clock.After(50 * time.Millisecond)
			} else {
				pending = map[string]bool{}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-retry:
			retry = nil
		case ev, ok := <-w.C:
			if !ok {
				return w.Err()
			}
			if t, isTask := ev.Object.(*api.Task); isTask && ev.Action != raftstore.ActionDelete && t.GetStatus().GetState() == api.TaskState_NEW {
				pending[t.Id] = true
			}
		}
	}
}

func (a *Allocator) allocate(ctx context.Context, pending map[string]bool) error {
	now := timestamppb.New(a.clock.Now())
	ids := make([]string, 0, len(pending))
	for id := range pending {
		ids = append(ids, id)
	}
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
			return err
		}
	}
	return nil
}
