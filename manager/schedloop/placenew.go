package schedloop

import (
	"context"
	"sync/atomic"
	"time"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Placing tasks as they are created: the orchestrator asks the loop where
// the tasks it is about to create should run (PlaceNew), writes them
// ASSIGNED to those nodes in its creating transaction, and so saves each
// task the scheduler's own write (one raft write of three on a task's way
// to RUNNING). The plan is the loop's own (View.Schedule, on the loop's
// goroutine, through reconcile.Config.Calls), charged to the view at once
// like a placement whose write is in flight, so the loop's passes count
// it. When the caller's transaction is over, done makes the view agree
// with the store again: each planned task is fed as the store has it
// (created as planned, created PENDING because its node left, or not
// created at all), whatever the outcome of the write.

// placeNewWait bounds how long PlaceNew waits for the loop (busy with a
// pass, or not running): then the caller creates the tasks PENDING, as
// without a plan, and the loop places them as usual.
const placeNewWait = 200 * time.Millisecond

// placeCall is one PlaceNew request. state: 0 waiting, 1 taken by the
// loop, 2 given up by the caller (the loop then does nothing).
type placeCall struct {
	tasks []*api.Task
	state atomic.Int32
	reply chan map[string]string // buffered: the loop never waits
}

// PlaceNew plans nodes for tasks about to be created (no node yet, not
// in the store) and returns task ID -> node ID for those it placed. The
// caller must call done once its transaction has committed or failed.
// Tasks the loop could not place, or all of them when the loop does not
// answer within placeNewWait (it is not running, or a pass holds it), are
// left out: create them PENDING.
func (l *Loop) PlaceNew(ctx context.Context, tasks []*api.Task) (nodes map[string]string, done func()) {
	nothing := func() {}
	if len(tasks) == 0 || !l.running.Load() {
		return nil, nothing
	}
	c := &placeCall{tasks: tasks, reply: make(chan map[string]string, 1)}
	wctx, cancel := context.WithTimeout(ctx, placeNewWait)
	defer cancel()
	select {
	case l.calls <- func() { l.placeNew(c) }:
	case <-wctx.Done():
		return nil, nothing
	}
	select {
	case nodes = <-c.reply:
	case <-wctx.Done():
		if c.state.CompareAndSwap(0, 2) {
			return nil, nothing
		}
		nodes = <-c.reply // taken: the plan is computed without waiting on anything
	}
	if len(nodes) == 0 {
		return nil, nothing
	}
	return nodes, func() { l.settleNew(ctx, nodes) }
}

// placeNew runs on the loop's goroutine.
func (l *Loop) placeNew(c *placeCall) {
	if !c.state.CompareAndSwap(0, 1) {
		return
	}
	h := l.cur
	if h == nil || h.view == nil {
		c.reply <- nil
		return
	}
	plan := h.view.Schedule(c.tasks, l.clock.Now())
	nodes := make(map[string]string, len(plan.Assigned))
	for _, a := range plan.Assigned {
		nodes[a.TaskID] = a.NodeID
	}
	c.reply <- nodes
}

// settleNew feeds the view each planned task as the store now has it; on
// the loop's goroutine, or not at all once the loop stopped (its next run
// starts from a snapshot of the store).
func (l *Loop) settleNew(ctx context.Context, nodes map[string]string) {
	f := func() {
		h := l.cur
		if h == nil || h.view == nil {
			return
		}
		placed := 0
		l.store.View(func(tx raftstore.ReadTx) {
			for id, node := range nodes {
				t := tx.Task(id)
				if t == nil {
					h.view.RemoveTask(id)
					continue
				}
				h.view.UpsertTask(t)
				if t.NodeId == node && t.GetStatus().GetState() >= api.TaskState_ASSIGNED {
					placed++
				}
			}
		})
		l.m.committed(placed)
		if placed < len(nodes) {
			// What a plan held and its task does not may make room.
			if h.inPass {
				h.replan = true
			} else {
				h.markAll()
			}
		}
	}
	if !l.running.Load() {
		return
	}
	select {
	case l.calls <- f:
	default:
		// The loop is in a pass with calls queued: do not hold the
		// caller up; the call waits for the loop or the caller's end.
		go func() {
			select {
			case l.calls <- f:
			case <-ctx.Done():
			}
		}()
	}
}
