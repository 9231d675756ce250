package dispatcher

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	txbatch "github.com/shoal-project/shoal/internal/batch"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// statusWriter commits task status reports in batches: reports that arrive
// while a batch commits go into the next one, so many agents cost one raft
// write per round instead of one each. Pending reports are bounded by the
// tasks in the store (one per task, the latest wins).
type statusWriter struct {
	store *raftstore.Store
	clock clockwork.Clock
	log   *slog.Logger

	mu      sync.Mutex
	pending map[string]pendingStatus // by task ID
	waiters []chan error
	kick    chan struct{}
}

type pendingStatus struct {
	nodeID string
	status *api.TaskStatus
}

// batchWindow is how long a batch gathers reports before committing.
const batchWindow = 10 * time.Millisecond

func newStatusWriter(store *raftstore.Store, clock clockwork.Clock, log *slog.Logger) *statusWriter {
	return &statusWriter{store: store, clock: clock, log: log, pending: map[string]pendingStatus{}, kick: make(chan struct{}, 1)}
}

// submit queues reports and waits until the batch holding them commits.
func (w *statusWriter) submit(ctx context.Context, nodeID string, updates []*api.TaskStatusUpdate) error {
	done := make(chan error, 1)
	w.mu.Lock()
	for _, u := range updates {
		w.pending[u.TaskId] = pendingStatus{nodeID: nodeID, status: u.Status}
	}
	w.waiters = append(w.waiters, done)
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return errdefs.DeadlineExceeded("status update not committed in time: %v", ctx.Err())
	}
}

func (w *statusWriter) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			w.fail(errdefs.Unavailable("dispatcher stopped"))
			return
		case <-w.kick:
		}
		select {
		case <-ctx.Done():
		case <-w.clock.After(batchWindow):
		}
		w.mu.Lock()
		batch, waiters := w.pending, w.waiters
		w.pending, w.waiters = map[string]pendingStatus{}, nil
		w.mu.Unlock()
		err := w.commit(ctx, batch)
		for _, c := range waiters {
			c <- err
		}
	}
}

func (w *statusWriter) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.waiters {
		c <- err
	}
	w.waiters = nil
}

func (w *statusWriter) commit(ctx context.Context, batch map[string]pendingStatus) error {
	ids := make([]string, 0, len(batch))
	for id := range batch {
		ids = append(ids, id)
	}
	// Each status write carries the whole task: batches are cut by bytes.
	sizes := map[string]int{}
	w.store.View(func(tx raftstore.ReadTx) {
		for _, id := range ids {
			if t := tx.Task(id); t != nil {
				sizes[id] = proto.Size(t)
			}
		}
	})
	for _, part := range txbatch.Cut(ids, func(id string) int { return sizes[id] }, raftstore.BatchItems, raftstore.BatchBytes) {
		err := updateRetrying(ctx, w.store, func(tx *raftstore.Tx) error {
			for _, id := range part {
				p := batch[id]
				t := tx.Task(id)
				if t == nil || t.NodeId != p.nodeID {
					continue // deleted, or not this node's (never trusted)
				}
				cur := t.GetStatus()
				if p.status.State < cur.GetState() || proto.Equal(cur, p.status) {
					continue // states only move forward
				}
				c := raftstore.CloneTask(t)
				c.Status = p.status
				if err := tx.Update(c); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Bounds of updateRetrying: the attempts of one write that keeps losing
// races with other writes, and each attempt's deadline.
const (
	writeAttempts = 5
	writeTimeout  = 10 * time.Second
)

// updateRetrying runs fn in a store transaction, again (at most
// writeAttempts times) while its commit loses a race with another write; fn
// must read everything it writes from tx.
func updateRetrying(ctx context.Context, store *raftstore.Store, fn func(tx *raftstore.Tx) error) error {
	var err error
	for range writeAttempts {
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		err = store.Update(wctx, fn)
		cancel()
		if !errdefs.IsConflict(err) {
			break
		}
	}
	return err
}
