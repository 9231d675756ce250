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
// write per round instead of one each. A round is cut into transactions
// (parts) by count and bytes; up to partsInFlight parts, of this round and
// the next ones, commit at once, and a round's callers are answered when
// all its parts have: a round never waits for the previous one, so the
// reports get their share of raft's batches while other loops (the
// orchestrator's creates) keep several transactions in flight too.
// Pending reports are bounded by the tasks in the store (one per task, the
// latest wins); parts in flight by partsInFlight.
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

// partsInFlight bounds the status transactions committing at once.
const partsInFlight = 4

// round is one batch of reports: its callers hear when every part of it
// has committed (the first error, if any).
type round struct {
	parts   int
	err     error
	waiters []chan error
}

// partDone is a part's outcome, handed back to the run loop.
type partDone struct {
	r   *round
	err error
}

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
	writes := txbatch.NewInFlight(partsInFlight, func(d partDone) {
		if d.err != nil && d.r.err == nil {
			d.r.err = d.err
		}
		if d.r.parts--; d.r.parts == 0 {
			for _, c := range d.r.waiters {
				c <- d.r.err
			}
		}
	})
	// Parts still committing end with ctx; their callers hear it.
	defer writes.Wait()
	for {
		select {
		case <-ctx.Done():
			w.fail(errdefs.Unavailable("dispatcher stopped"))
			return
		case d := <-writes.Finished():
			writes.Settle(d)
			continue
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
		parts := w.cut(batch)
		r := &round{parts: len(parts), waiters: waiters}
		if len(parts) == 0 {
			for _, c := range waiters {
				c <- nil
			}
			continue
		}
		for _, part := range parts {
			writes.Go(func() partDone { return partDone{r: r, err: w.commit(ctx, part, batch)} })
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

// cut splits a batch's task IDs into transactions: each status write
// carries the whole task, so they are cut by bytes too.
func (w *statusWriter) cut(batch map[string]pendingStatus) [][]string {
	ids := make([]string, 0, len(batch))
	for id := range batch {
		ids = append(ids, id)
	}
	sizes := map[string]int{}
	w.store.View(func(tx raftstore.ReadTx) {
		for _, id := range ids {
			if t := tx.Task(id); t != nil {
				sizes[id] = proto.Size(t)
			}
		}
	})
	return txbatch.Cut(ids, func(id string) int { return sizes[id] }, raftstore.BatchItems, raftstore.BatchBytes)
}

// commit writes one part of a batch; parts of different rounds may hold
// the same task, and commit in any order: a state never moves back.
func (w *statusWriter) commit(ctx context.Context, part []string, batch map[string]pendingStatus) error {
	return updateRetrying(ctx, w.store, func(tx *raftstore.Tx) error {
		for _, id := range part {
			p := batch[id]
			t := tx.Task(id)
			if t == nil || t.NodeId != p.nodeID {
				continue // deleted, or not this node's (never trusted)
			}
			cur := t.GetStatus()
			if p.status.State < cur.GetState() || proto.Equal(cur, p.status) || olderInState(p.status, cur) {
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
}

// olderInState: s reports the state cur has, from before cur's report (a
// part of an earlier round that committed after a later one).
func olderInState(s, cur *api.TaskStatus) bool {
	return s.GetState() == cur.GetState() && s.GetTimestamp() != nil && cur.GetTimestamp() != nil &&
		s.GetTimestamp().AsTime().Before(cur.GetTimestamp().AsTime())
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
