package worker

import (
	"context"
	"sync"

	api "github.com/shoal-project/shoal/proto"
)

// reporter holds the task status updates not yet accepted by a manager. It
// keeps at most one update per task (the latest, which supersedes the
// others since states only move forward), so its size is bounded by the
// number of tasks whatever the outage. Sessions drain it with flush; it is
// safe for concurrent use.
type reporter struct {
	batch int

	mu      sync.Mutex
	pending map[string]*api.TaskStatus
	// full is signalled when a whole batch is pending, so the session sends
	// it without waiting for the flush interval.
	full chan struct{}
}

func newReporter(batch int) *reporter {
	return &reporter{batch: batch, pending: map[string]*api.TaskStatus{}, full: make(chan struct{}, 1)}
}

// enqueue records st as the status to send for task id. An update with a
// lower state than the pending one is dropped (it would be ignored by the
// manager anyway); an equal state replaces it, being newer.
func (r *reporter) enqueue(id string, st *api.TaskStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.pending[id]; ok && old.GetState() > st.GetState() {
		return
	}
	r.pending[id] = st
	if len(r.pending) >= r.batch {
		select {
		case r.full <- struct{}{}:
		default:
		}
	}
}

// drop forgets the pending update of a task that is no longer assigned.
func (r *reporter) drop(id string) {
	r.mu.Lock()
	delete(r.pending, id)
	r.mu.Unlock()
}

// take removes and returns up to one batch of pending updates.
func (r *reporter) take() []*api.TaskStatusUpdate {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*api.TaskStatusUpdate
	for id, st := range r.pending {
		if len(out) == r.batch {
			break
		}
		out = append(out, &api.TaskStatusUpdate{TaskId: id, Status: st})
		delete(r.pending, id)
	}
	return out
}

// putBack returns updates that could not be sent, unless a newer update for
// the same task arrived meanwhile.
func (r *reporter) putBack(updates []*api.TaskStatusUpdate) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range updates {
		if old, ok := r.pending[u.GetTaskId()]; ok && old.GetState() >= u.GetStatus().GetState() {
			continue
		}
		r.pending[u.GetTaskId()] = u.GetStatus()
	}
}

// len is the number of tasks with a pending update.
func (r *reporter) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// flush sends every pending update, a batch per call of send. On the first
// failure the unsent updates are put back and the error returned: they go
// out on the next flush, in this session or the next.
func (r *reporter) flush(ctx context.Context, send func(context.Context, []*api.TaskStatusUpdate) error) error {
	for {
		batch := r.take()
		if len(batch) == 0 {
			return nil
		}
		if err := send(ctx, batch); err != nil {
			r.putBack(batch)
			return err
		}
	}
}
