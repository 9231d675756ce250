package progress

import (
	"fmt"
	"time"

	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	api "github.com/shoal-project/shoal/proto"
)

// updater draws one poll's worth of tasks and says whether the service has
// converged.
type updater interface {
	update(svc *api.Service, tasks []*api.Task, active map[string]bool, rollback bool) bool
}

// hinter words a task's bar: its error, a reason it has waited long in
// PENDING, or its state.
type hinter struct {
	now          func() time.Time
	pendingAfter time.Duration
}

// taskLine writes the line of one task: its error when it has one, why it
// is still pending after a while, or its state and bar.
//
// Tasks of services draw nothing once they or their desired state are past
// running; tasks of jobs draw on up to "complete".
func (h hinter) taskLine(d *Display, id string, t *api.Task, total int64) {
	st := t.GetStatus()
	if st.GetErr() != "" {
		d.Update(id, truncError(st.GetErr()), 0, 0)
		return
	}
	if total != maxJobProgress && (terminal(t.GetDesiredState()) || terminal(st.GetState())) {
		return
	}
	if st.GetState() <= api.TaskState_PENDING && st.GetMessage() != "" && st.GetTimestamp() != nil &&
		h.now().Sub(st.GetTimestamp().AsTime()) >= h.pendingAfter {
		d.Update(id, truncError("pending: "+st.GetMessage()), 0, 0)
		return
	}
	d.Update(id, stateWord(st.GetState()), numbered[st.GetState()], total)
}

func writeOverall(d *Display, n, of uint64, rollback bool) {
	if rollback {
		d.Update("overall progress", fmt.Sprintf("rolling back update: %d out of %d tasks", n, of), 0, 0)
		return
	}
	d.Update("overall progress", fmt.Sprintf("%d out of %d tasks", n, of), 0, 0)
}

// replicated draws one bar per slot (up to 20 slots).
type replicated struct {
	d           *Display
	h           hinter
	slotMap     map[uint64]int
	initialized bool
	done        bool
}

func (u *replicated) update(svc *api.Service, tasks []*api.Task, active map[string]bool, rollback bool) bool {
	replicas := svc.GetSpec().GetReplicated().GetReplicas()
	if !u.initialized {
		u.slotMap = map[uint64]int{}
		writeOverall(u.d, 0, replicas, rollback)
		if replicas <= maxProgressBars {
			for i := uint64(1); i <= replicas; i++ {
				u.d.Update(fmt.Sprintf("%d/%d", i, replicas), " ", 0, 0)
			}
		}
		u.initialized = true
	}
	bySlot := map[uint64]*api.Task{}
	for _, t := range tasks {
		if !known(t) {
			continue
		}
		if cur, ok := bySlot[t.GetSlot()]; ok && !prefer(cur, t) {
			continue
		}
		if t.GetNodeId() != "" && !active[t.GetNodeId()] {
			continue
		}
		bySlot[t.GetSlot()] = t
	}
	if u.done {
		for _, t := range bySlot {
			if t.GetStatus().GetState() != api.TaskState_RUNNING {
				u.done = false
				break
			}
		}
	}
	var running uint64
	for _, slot := range sortedSlots(bySlot) {
		t := bySlot[slot]
		mapped := u.slotMap[slot]
		if mapped == 0 {
			mapped = len(u.slotMap) + 1
			u.slotMap[slot] = mapped
		}
		if !terminal(t.GetDesiredState()) && t.GetStatus().GetState() == api.TaskState_RUNNING {
			running++
		}
		if !u.done && replicas <= maxProgressBars && uint64(mapped) <= replicas {
			u.h.taskLine(u.d, fmt.Sprintf("%d/%d", mapped, replicas), t, maxProgress)
		}
	}
	if !u.done {
		writeOverall(u.d, running, replicas, rollback)
		u.done = running == replicas
	}
	return running == replicas
}

// global draws one bar per node that has a task.
type global struct {
	d           *Display
	h           hinter
	initialized bool
	done        bool
}

func (u *global) update(_ *api.Service, tasks []*api.Task, active map[string]bool, rollback bool) bool {
	// Unlike Docker, tasks on nodes that are down are not counted: they
	// would keep the display from ever converging.
	byNode := map[string]*api.Task{}
	for _, t := range tasks {
		if !known(t) || !active[t.GetNodeId()] {
			continue
		}
		if cur, ok := byNode[t.GetNodeId()]; ok && !prefer(cur, t) {
			continue
		}
		byNode[t.GetNodeId()] = t
	}
	nodeCount := uint64(len(byNode))
	if !u.initialized {
		if nodeCount == 0 {
			u.d.Update("overall progress", "waiting for new tasks", 0, 0)
			return false
		}
		writeOverall(u.d, 0, nodeCount, rollback)
		u.initialized = true
	}
	if u.done {
		for _, t := range byNode {
			if t.GetStatus().GetState() != api.TaskState_RUNNING {
				u.done = false
				break
			}
		}
	}
	var running uint64
	for _, node := range sortedNodes(byNode) {
		t := byNode[node]
		if !terminal(t.GetDesiredState()) && t.GetStatus().GetState() == api.TaskState_RUNNING {
			running++
		}
		if !u.done && nodeCount <= maxProgressBars {
			u.h.taskLine(u.d, formatter.TruncateID(node), t, maxProgress)
		}
	}
	if !u.done {
		writeOverall(u.d, running, nodeCount, rollback)
		u.done = running == nodeCount
	}
	return running == nodeCount
}
