package orchestrator

import (
	"cmp"
	"slices"
	"sort"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/internal/ids"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
	"github.com/shoal-project/shoal/scheduler"
)

// Input is everything Reconcile needs to decide about one service.
type Input struct {
	ServiceID string
	Service   *api.Service // nil when the service was deleted
	Tasks     []*api.Task  // every task of the service
	Nodes     map[string]*api.Node
	History   int // tasks kept per slot, current one included
	Now       time.Time
}

// Actions are the store writes Reconcile asks for. Updated tasks are fresh
// copies carrying the version they were read at.
type Actions struct {
	Create []*api.Task
	Update []*api.Task
	Delete []*api.Task
	// Service, when set, is the service with a new update status (or
	// rolled back), carrying the version it was read at.
	Service *api.Service
	// WakeAt is when the service needs another look (a restart delay runs
	// out); zero when nothing is pending.
	WakeAt time.Time
}

// Empty reports whether there is nothing to write.
func (a *Actions) Empty() bool {
	return len(a.Create)+len(a.Update)+len(a.Delete) == 0 && a.Service == nil
}

func (a *Actions) wake(t time.Time) {
	if a.WakeAt.IsZero() || t.Before(a.WakeAt) {
		a.WakeAt = t
	}
}

// Reconcile decides what to change so the service's tasks match its spec:
// fill or trim slots (replicated) or nodes (global), replace ended tasks by
// the restart policy, move tasks off down and drained nodes, replace tasks
// of an older spec, and trim history. It is pure: same input, same output.
func Reconcile(in Input) Actions {
	r := &reconciler{in: in, updated: map[string]*api.Task{}}
	r.run()
	return r.out
}

type reconciler struct {
	in      Input
	out     Actions
	updated map[string]*api.Task
	dirty   []dirtySlot // slots whose task runs an older spec
}

// setDesired records a desired-state change (only ever forward).
func (r *reconciler) setDesired(t *api.Task, s api.TaskState) {
	if r.desired(t) >= s {
		return
	}
	r.touch(t).DesiredState = s
}

// touch returns the copy of t this pass writes back, making it once.
func (r *reconciler) touch(t *api.Task) *api.Task {
	c := r.updated[t.Id]
	if c == nil {
		c = raftstore.CloneTask(t)
		r.updated[t.Id] = c
		r.out.Update = append(r.out.Update, c)
	}
	return c
}

// desired is a task's desired state including changes made in this pass.
func (r *reconciler) desired(t *api.Task) api.TaskState {
	if c := r.updated[t.Id]; c != nil {
		return c.DesiredState
	}
	return t.DesiredState
}

// runnable: meant to run (a job's task: to run to completion, desired
// COMPLETE) and not ended.
func (r *reconciler) runnable(t *api.Task) bool {
	d := r.desired(t)
	return (d <= api.TaskState_RUNNING || d == api.TaskState_COMPLETE) && !t.GetStatus().GetState().Terminal()
}

// nodeGone: the node cannot run the task any more (down, drained, removed).
func (r *reconciler) nodeGone(t *api.Task) bool {
	if t.NodeId == "" {
		return false
	}
	n := r.in.Nodes[t.NodeId]
	return n == nil || n.GetStatus().GetState() == api.NodeStatus_DOWN || n.GetSpec().GetAvailability() == api.Availability_DRAIN
}

func (r *reconciler) run() {
	svc := r.in.Service
	for _, t := range r.in.Tasks {
		// A task the node will never run again is history.
		if r.runnable(t) && r.nodeGone(t) {
			r.setDesired(t, api.TaskState_SHUTDOWN)
		}
		// A task that ended while meant to run becomes history.
		if t.GetStatus().GetState().Terminal() && r.desired(t) <= api.TaskState_RUNNING {
			r.setDesired(t, api.TaskState_SHUTDOWN)
		}
	}
	switch {
	case svc == nil:
		// Marked, so the node caps the stop grace period: a removed
		// service's containers go in bounded time (also those a
		// scale-down was already stopping).
		for _, t := range r.in.Tasks {
			r.setDesired(t, api.TaskState_REMOVE)
			if !t.ServiceRemoved {
				r.touch(t).ServiceRemoved = true
			}
		}
	case svc.Spec.IsGlobal():
		r.global()
		r.rollingUpdate()
	default:
		r.replicated()
		r.rollingUpdate()
	}
	r.reap()
}

// slotKey is a slot: its number, or (slot 0) the node of a global
// service's task.
type slotKey struct {
	slot uint64
	node string
}

// slotOf keys tasks into slots: the slot number, or the node for global.
func slotOf(t *api.Task) slotKey {
	if t.Slot > 0 {
		return slotKey{slot: t.Slot}
	}
	return slotKey{node: t.NodeId}
}

func (r *reconciler) replicated() {
	svc := r.in.Service
	want := svc.Spec.GetReplicated().GetReplicas()
	slots := r.bySlot()
	if job := svc.Spec.GetReplicatedJob(); job != nil {
		want = r.jobSlots(job, slots)
	} else {
		for slot := uint64(1); slot <= want; slot++ {
			r.fillSlot(slots.get(slotKey{slot: slot}), slot, "")
		}
	}
	slots.each(func(key slotKey, tasks []*api.Task) {
		if slot := key.slot; slot == 0 || slot > want {
			for _, t := range tasks {
				if svc.Spec.IsJob() && t.GetStatus().GetState() == api.TaskState_COMPLETE {
					continue // a finished job task is its record
				}
				r.setDesired(t, api.TaskState_REMOVE)
			}
		}
	})
}

// jobSlots runs a replicated job: slot k is the k-th completion wanted; at
// most max_concurrent slots run at once. It returns the number of slots.
func (r *reconciler) jobSlots(j *api.ReplicatedJob, slots *slotIndex) uint64 {
	total := j.TotalCompletions
	if total == 0 {
		total = max(j.MaxConcurrent, 1)
	}
	conc := j.MaxConcurrent
	if conc == 0 {
		conc = total
	}
	var active uint64
	for slot := uint64(1); slot <= total; slot++ {
		ts := slots.get(slotKey{slot: slot})
		if r.jobDone(ts) {
			continue
		}
		for _, t := range ts {
			if r.runnable(t) {
				active++
				break
			}
		}
	}
	for slot := uint64(1); slot <= total && active < conc; slot++ {
		ts := slots.get(slotKey{slot: slot})
		if r.jobDone(ts) || r.hasRunnable(ts) {
			continue
		}
		before := len(r.out.Create)
		r.fillSlot(ts, slot, "")
		if len(r.out.Create) > before {
			active++
		}
	}
	return total
}

func (r *reconciler) hasRunnable(ts []*api.Task) bool {
	for _, t := range ts {
		if r.runnable(t) {
			return true
		}
	}
	return false
}

func (r *reconciler) global() {
	svc := r.in.Service
	cons, _ := scheduler.ParseConstraints(svc.Spec.GetTask().GetPlacement().GetConstraints())
	slots := r.bySlot()
	wantNode := map[string]bool{}
	for id, n := range r.in.Nodes {
		if n.GetSpec().GetAvailability() == api.Availability_DRAIN || n.GetStatus().GetState() == api.NodeStatus_DOWN {
			continue
		}
		if !scheduler.MatchAll(cons, n) {
			continue
		}
		wantNode[id] = true
	}
	ids := make([]string, 0, len(wantNode))
	for id := range wantNode {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		r.fillSlot(slots.get(slotKey{node: id}), 0, id)
	}
	slots.each(func(key slotKey, tasks []*api.Task) {
		if key.slot == 0 && wantNode[key.node] {
			return
		}
		for _, t := range tasks {
			if svc.Spec.IsJob() && t.GetStatus().GetState() == api.TaskState_COMPLETE {
				continue
			}
			r.setDesired(t, api.TaskState_REMOVE)
		}
	})
}

// bySlot groups the tasks not to be removed by slot, each slot's newest
// first.
func (r *reconciler) bySlot() *slotIndex {
	x := indexSlots(r.in.Tasks, func(t *api.Task) bool { return r.desired(t) < api.TaskState_REMOVE })
	x.each(func(_ slotKey, ts []*api.Task) {
		if len(ts) > 1 {
			sortNewestFirst(ts)
		}
	})
	return &x
}

// sortNewestFirst orders tasks by creation (raft index of creation is not
// kept, so creation time then version), stably.
func sortNewestFirst(ts []*api.Task) {
	slices.SortStableFunc(ts, func(x, y *api.Task) int {
		if c := compareCreation(y, x); c != 0 {
			return c
		}
		return cmp.Compare(y.GetMeta().GetVersion(), x.GetMeta().GetVersion())
	})
}

// compareCreation compares two tasks' creation times as instants (as
// their AsTime would), without making times of them when both are
// normalized timestamps of the range timestamppb accepts, where the
// instants' order is that of (seconds, nanos).
func compareCreation(x, y *api.Task) int {
	a, b := x.GetMeta().GetCreatedAt(), y.GetMeta().GetCreatedAt()
	if plainTimestamp(a) && plainTimestamp(b) {
		if c := cmp.Compare(a.GetSeconds(), b.GetSeconds()); c != 0 {
			return c
		}
		return cmp.Compare(a.GetNanos(), b.GetNanos())
	}
	return a.AsTime().Compare(b.AsTime())
}

// plainTimestamp: nanos in [0, 1e9) and seconds from year 1 to 9999
// (timestamppb's valid range), or nil (the zero instant of AsTime).
func plainTimestamp(t *timestamppb.Timestamp) bool {
	const minSeconds, maxSeconds = -62135596800, 253402300799
	n, s := t.GetNanos(), t.GetSeconds()
	return n >= 0 && n < 1e9 && s >= minSeconds && s <= maxSeconds
}

// fillSlot makes sure one slot (or one node of a global service) has exactly
// one runnable task of the current spec. Replacing a task of an older spec
// is left to the rolling update (update.go), which paces it.
func (r *reconciler) fillSlot(tasks []*api.Task, slot uint64, node string) {
	svc := r.in.Service
	var current, older *api.Task
	for _, t := range tasks {
		if !r.runnable(t) {
			continue
		}
		if current == nil {
			current = t
			continue
		}
		if older == nil && current.SpecVersion == svc.SpecVersion && t.SpecVersion < svc.SpecVersion &&
			current.GetStatus().GetState() < api.TaskState_RUNNING {
			older = t // start-first: the old task runs until its replacement does
			continue
		}
		r.setDesired(t, api.TaskState_SHUTDOWN) // a duplicate (e.g. a node came back)
	}
	if current != nil && current.SpecVersion < svc.SpecVersion {
		if !proto.Equal(current.Spec, svc.Spec.Task) {
			r.dirty = append(r.dirty, dirtySlot{slot: slot, node: node, task: current})
			return
		}
		// Same spec under a newer version (a rollback to what it runs, a
		// label-only change, published ports added or removed): keep the
		// task and record that it is current, with the service's endpoint
		// (its ports reach the node's routing mesh without a restart).
		c := r.touch(current)
		c.SpecVersion = svc.SpecVersion
		if current.GetEndpoint() != nil && svc.GetEndpoint() != nil && !proto.Equal(current.Endpoint, svc.Endpoint) {
			c.Endpoint = svc.Endpoint
		}
	}
	if current != nil {
		if r.desired(current) == api.TaskState_READY && !r.anyAlive(tasks, current) {
			// stop-first: the slot's old task is down; start the new one.
			r.setDesired(current, api.TaskState_RUNNING)
		}
		return
	}
	if svc.Spec.IsJob() && r.jobDone(tasks) {
		return
	}
	var last *api.Task
	if len(tasks) > 0 {
		last = tasks[0]
	}
	if last == nil {
		r.create(slot, node, nil)
		return
	}
	if r.nodeGone(last) && last.GetStatus().GetState() <= api.TaskState_RUNNING {
		r.create(slot, node, last) // moved off a lost node: no restart delay
		return
	}
	at, ok := r.restartAt(last)
	if !ok {
		return
	}
	if r.in.Now.Before(at) {
		r.out.wake(at)
		return
	}
	r.create(slot, node, last)
}

// anyAlive reports whether a task of the slot other than keep may still be
// running on its node.
func (r *reconciler) anyAlive(tasks []*api.Task, keep *api.Task) bool {
	for _, t := range tasks {
		if t == keep || t.NodeId == "" || r.nodeGone(t) {
			continue
		}
		if st := t.GetStatus().GetState(); st >= api.TaskState_ASSIGNED && !st.Terminal() {
			return true
		}
	}
	return false
}

// jobDone: the slot's job task of this iteration completed.
func (r *reconciler) jobDone(tasks []*api.Task) bool {
	iter := r.in.Service.GetJobStatus().GetJobIteration()
	for _, t := range tasks {
		if t.JobIteration == iter && t.GetStatus().GetState() == api.TaskState_COMPLETE {
			return true
		}
	}
	return false
}

// restartAt says when an ended task's replacement may start, following the
// restart policy; false when it must not be replaced.
func (r *reconciler) restartAt(last *api.Task) (time.Time, bool) {
	p := r.in.Service.Spec.GetTask().RestartPolicy()
	if r.in.Service.Spec.IsJob() && r.in.Service.Spec.GetTask().GetRestart() == nil {
		p.Condition = api.RestartPolicy_ON_FAILURE // jobs default to on-failure
	}
	st := last.GetStatus().GetState()
	if last.JobIteration != r.in.Service.GetJobStatus().GetJobIteration() && r.in.Service.Spec.IsJob() {
		return r.in.Now, true // a new iteration starts fresh
	}
	if last.SpecVersion < r.in.Service.SpecVersion {
		return r.in.Now, true
	}
	switch p.Condition {
	case api.RestartPolicy_NONE:
		return time.Time{}, false
	case api.RestartPolicy_ON_FAILURE:
		if st == api.TaskState_COMPLETE || st == api.TaskState_SHUTDOWN {
			return time.Time{}, false
		}
	}
	if p.MaxAttempts > 0 && r.windowRestarts(last, p) >= p.MaxAttempts {
		return time.Time{}, false
	}
	ended := last.GetStatus().GetTimestamp().AsTime()
	if last.GetStatus().GetTimestamp() == nil || ended.After(r.in.Now) {
		ended = r.in.Now
	}
	return ended.Add(p.Delay.AsDuration()), true
}

// windowRestarts is the restarts counted against max attempts: those since
// the window started (all of them without a window).
func (r *reconciler) windowRestarts(last *api.Task, p *api.RestartPolicy) uint64 {
	w := p.GetWindow().AsDuration()
	if w > 0 && last.GetRestartWindowStart() != nil && r.in.Now.Sub(last.RestartWindowStart.AsTime()) > w {
		return 0
	}
	return last.Restarts
}

// create adds a new task to a slot; prev is the task it replaces.
func (r *reconciler) create(slot uint64, node string, prev *api.Task) *api.Task {
	svc := r.in.Service
	now := timestamppb.New(r.in.Now)
	t := &api.Task{
		Id:                 ids.New(),
		ServiceId:          svc.Id,
		Slot:               slot,
		NodeId:             node,
		Spec:               svc.Spec.Task, // shared, never modified (raftstore.CloneTask)
		SpecVersion:        svc.SpecVersion,
		ServiceAnnotations: svc.Spec.Annotations,
		DesiredState:       api.TaskState_RUNNING,
		Status:             &api.TaskStatus{State: api.TaskState_NEW, Timestamp: now, Message: "created"},
		JobIteration:       svc.GetJobStatus().GetJobIteration(),
		RestartWindowStart: now,
	}
	if svc.Spec.IsJob() {
		t.DesiredState = api.TaskState_COMPLETE
	}
	if svc.Endpoint != nil {
		t.Endpoint = svc.Endpoint
	}
	if prev != nil && prev.SpecVersion == svc.SpecVersion && !r.nodeGone(prev) {
		p := svc.Spec.GetTask().RestartPolicy()
		t.Restarts = r.windowRestarts(prev, p) + 1
		if w := p.GetWindow().AsDuration(); w > 0 && prev.RestartWindowStart != nil && r.in.Now.Sub(prev.RestartWindowStart.AsTime()) <= w {
			t.RestartWindowStart = prev.RestartWindowStart
		}
	}
	r.out.Create = append(r.out.Create, t)
	return t
}

// reap deletes tasks that are done with: removed tasks once stopped (or
// never placed, or on a node that is gone), and history beyond the limit.
func (r *reconciler) reap() {
	slots := indexSlots(r.in.Tasks, func(t *api.Task) bool {
		if r.desired(t) < api.TaskState_REMOVE {
			return true
		}
		st := t.GetStatus().GetState()
		_, nodeExists := r.in.Nodes[t.NodeId]
		if st.Terminal() || st < api.TaskState_ASSIGNED || t.NodeId == "" || !nodeExists ||
			r.in.Nodes[t.NodeId].GetStatus().GetState() == api.NodeStatus_DOWN {
			r.out.Delete = append(r.out.Delete, t)
		}
		return false
	})
	limit := r.in.History
	if limit <= 0 {
		limit = api.DefaultTaskHistory
	}
	slots.each(func(_ slotKey, ts []*api.Task) {
		if len(ts) <= limit {
			return // all kept, whatever their order
		}
		sortNewestFirst(ts)
		kept := 0
		for _, t := range ts {
			if kept < limit || r.runnable(t) || !t.GetStatus().GetState().Terminal() {
				kept++
				continue
			}
			r.out.Delete = append(r.out.Delete, t)
		}
	})
}
