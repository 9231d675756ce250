package orchestrator

import (
	"sync/atomic"
	"time"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Quiet events.
//
// Reconciling a service reads all its tasks. While a service of N replicas
// is created, the scheduler's assignments and the agents' RUNNING reports
// arrive in batches, and a pass after each batch would cost N: quadratic
// in the service's size. Most of these events cannot change what Reconcile
// decides: a task that is the only runnable one of its replicated slot,
// of the service's current spec, meant to run, moving forward without
// ending (PENDING -> ASSIGNED with its node set, -> RUNNING). What in
// Reconcile looks at such a task, and why it does not care:
//
//   - nodeGone (run, fillSlot, create): the task's node must exist, be up
//     and active; checked for each quiet event against the store before a
//     pass is skipped (a later change of the node is a node event).
//   - the slot's tasks in fillSlot: the task stays the slot's current one
//     (the only runnable one), of the current spec, desired RUNNING, so no
//     duplicate, no start-first older task waiting for it to run (that
//     older task would be runnable too), no stop-first READY task.
//   - rollingUpdate: reads tasks' states and RUNNING times only while an
//     update or rollback is in progress (UPDATING, ROLLBACK_STARTED), or
//     when a slot runs an older spec (a write: not a quiet service).
//   - reap: keeps the task (runnable); its place among the slot's tasks
//     sorted newest first is by creation time, then version: a task that
//     shares its creation time with another of its slot is not quiet, so
//     its new version cannot reorder the slot.
//   - jobs (iterations, completions) and global services (slots keyed by
//     node) are never quiet; a slot outside 1..replicas is not either.
//
// So the handler keeps, per service, the tasks that are quiet as of its
// last pass that had nothing to write but creates (newQuietState), from
// the moment that pass decided, before its creates commit: the pass takes
// the watch's events while it waits for them (reconcile.Outcome.Events),
// and the events of its own creates are quiet too; a failed write drops
// the state. Until any other
// event touches the service (any service event, any task event that is not
// quiet, any node or cluster event, a snapshot), quiet events still mark
// it, but its next pass only checks the quiet tasks' nodes (stands) and
// reports the same wake-up as the pass it stands on. A wake-up that is due,
// a retry or a snapshot always reads everything. What a pass skips is what
// it would have found empty: Reconcile's decisions are unchanged
// (TestQuietFilterSameDecisions).
type quietState struct {
	svcVersion  uint64
	specVersion uint64
	wake        time.Time
	// ids[s-1] is the ID of slot s's task when it is alone and quiet in
	// its slot, "" otherwise (slots 1..replicas): at 1,000,000 replicas,
	// 16 MB and no hashing, where a set of the IDs took 50-120 MB. count
	// is how many are set.
	ids   []string
	count int
	// events counts the quiet events since the last pass, nodes are
	// their tasks' nodes.
	events int
	nodes  map[string]struct{}
}

// has tells whether t is one of the quiet tasks.
func (q *quietState) has(t *api.Task) bool {
	return t.Slot >= 1 && t.Slot <= uint64(len(q.ids)) && t.Id != "" && q.ids[t.Slot-1] == t.Id
}

// passStats counts what Run's passes did.
type passStats struct {
	passes    atomic.Uint64 // services reconciled from all their tasks
	tasksRead atomic.Uint64 // tasks those passes read
	skipped   atomic.Uint64 // services whose pass stood on the last one
	idle      atomic.Uint64 // passes that had nothing to write
	snapshots atomic.Uint64 // full snapshots (start, and after a cut-off watch)
}

// newQuietState is what a pass over in lets later passes skip, the pass
// having had nothing to write but created (its writes committed); nil when
// the service cannot have quiet tasks. Created tasks count only when each
// went to a slot that had no task at all: the state after the creates then
// reconciles to nothing more (every other slot's decision is unchanged, and
// a created task is alone in its slot, current and meant to run), so their
// creation is quiet too.
func newQuietState(in Input, created []*api.Task, wake time.Time) *quietState {
	svc := in.Service
	if svc == nil || svc.GetSpec().GetReplicated() == nil {
		return nil
	}
	switch svc.GetUpdateStatus().GetState() {
	case api.UpdateStatus_UPDATING, api.UpdateStatus_ROLLBACK_STARTED:
		return nil
	}
	want := svc.Spec.GetReplicated().GetReplicas()
	if want > uint64(4*(len(in.Tasks)+len(created))+1024) {
		return nil // slots far more than tasks: not a service at rest
	}
	// Per slot s, sole[s-1]: 1 + the index of its one runnable task, 0
	// when none, -1 when several or one shares its creation time with
	// another of the slot.
	sole := make([]int32, want)
	for i, t := range in.Tasks {
		if t.Slot == 0 || t.Slot > want || !storedRunnable(t) {
			continue
		}
		if sole[t.Slot-1] != 0 {
			sole[t.Slot-1] = -1
		} else {
			sole[t.Slot-1] = int32(i + 1)
		}
	}
	var slotted []bool // slots holding any task
	if len(created) > 0 {
		slotted = make([]bool, want)
	}
	for i, t := range in.Tasks {
		if t.Slot == 0 || t.Slot > want {
			continue
		}
		if slotted != nil {
			slotted[t.Slot-1] = true
		}
		if j := sole[t.Slot-1]; j > 0 && int(j-1) != i && sameCreation(t, in.Tasks[j-1]) {
			sole[t.Slot-1] = -1
		}
	}
	q := &quietState{svcVersion: svc.GetMeta().GetVersion(), specVersion: svc.SpecVersion, wake: wake,
		ids: make([]string, want)}
	for _, t := range created {
		if t.Slot == 0 || t.Slot > want || slotted[t.Slot-1] || t.DesiredState != api.TaskState_RUNNING || t.SpecVersion != svc.SpecVersion {
			return nil
		}
		slotted[t.Slot-1] = true
		q.ids[t.Slot-1] = t.Id
		q.count++
	}
	for s, j := range sole {
		if j <= 0 {
			continue
		}
		if t := in.Tasks[j-1]; t.DesiredState == api.TaskState_RUNNING && t.SpecVersion == svc.SpecVersion {
			q.ids[s] = t.Id
			q.count++
		}
	}
	if q.count == 0 {
		return nil
	}
	return q
}

// storedRunnable is reconciler.runnable for a task as stored.
func storedRunnable(t *api.Task) bool {
	d := t.DesiredState
	return (d <= api.TaskState_RUNNING || d == api.TaskState_COMPLETE) && !t.GetStatus().GetState().Terminal()
}

func sameCreation(a, b *api.Task) bool {
	x, y := a.GetMeta().GetCreatedAt(), b.GetMeta().GetCreatedAt()
	return x.GetSeconds() == y.GetSeconds() && x.GetNanos() == y.GetNanos()
}

// holds tells whether the update old -> cur of one of the service's tasks
// is quiet: a quiet task moving forward without ending, meant to run, of
// the same spec, slot and creation, placed (or staying) on a node.
func (q *quietState) holds(old, cur *api.Task) bool {
	if !q.has(cur) || old.Id != cur.Id {
		return false
	}
	a, b := old.GetStatus().GetState(), cur.GetStatus().GetState()
	return old.DesiredState == api.TaskState_RUNNING && cur.DesiredState == api.TaskState_RUNNING &&
		old.SpecVersion == q.specVersion && cur.SpecVersion == q.specVersion &&
		old.JobIteration == cur.JobIteration && old.ServiceId == cur.ServiceId && old.Slot == cur.Slot &&
		sameCreation(old, cur) &&
		cur.NodeId != "" && (old.NodeId == "" || old.NodeId == cur.NodeId) &&
		a <= b && !b.Terminal()
}

// created tells whether the creation of t is quiet: the pass the state
// stands on created it, unplaced or already ASSIGNED by the placer
// (WithPlacer) to a node, which is then checked like an assignment's.
func (q *quietState) created(t *api.Task) bool {
	return q.has(t) && t.DesiredState == api.TaskState_RUNNING && t.SpecVersion == q.specVersion &&
		!t.GetStatus().GetState().Terminal()
}

// note records a quiet event and its task's node (none for a creation), to
// check before the pass is skipped.
func (q *quietState) note(node string) {
	q.events++
	if node == "" {
		return
	}
	if q.nodes == nil {
		q.nodes = map[string]struct{}{}
	}
	q.nodes[node] = struct{}{}
}

// stands tells whether the service's pass can be skipped: it was marked by
// quiet events only, its service is the one the state was taken from, the
// nodes the quiet tasks went to can run them, and no wake-up is due. It
// forgets the quiet events' nodes either way (a pass that is not skipped
// takes a new state).
func (q *quietState) stands(store *raftstore.Store, id string, now time.Time) bool {
	nodes, events := q.nodes, q.events
	q.nodes, q.events = nil, 0
	if events == 0 || (!q.wake.IsZero() && !now.Before(q.wake)) {
		return false
	}
	ok := true
	store.View(func(tx raftstore.ReadTx) {
		if s := tx.Service(id); s == nil || s.GetMeta().GetVersion() != q.svcVersion {
			ok = false
			return
		}
		for id := range nodes {
			n := tx.Node(id)
			if n == nil || n.GetStatus().GetState() == api.NodeStatus_DOWN || n.GetSpec().GetAvailability() == api.Availability_DRAIN {
				ok = false
				return
			}
		}
	})
	return ok
}
