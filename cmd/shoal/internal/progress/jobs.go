package progress

import (
	"fmt"
	"strconv"

	api "github.com/shoal-project/shoal/proto"
)

// replicatedJob shows completed out of total completions and the tasks
// running at once.
type replicatedJob struct {
	d           *Display
	h           hinter
	iteration   uint64
	concurrent  int
	total       int
	initialized bool
	digits      int
	actDigits   int
}

func newReplicatedJob(d *Display, h hinter, svc *api.Service) *replicatedJob {
	job := svc.GetSpec().GetReplicatedJob()
	total, concurrent := int(job.GetTotalCompletions()), int(job.GetMaxConcurrent())
	if total == 0 {
		total = max(concurrent, 1)
	}
	if concurrent == 0 {
		concurrent = total
	}
	return &replicatedJob{
		d: d, h: h,
		iteration:  svc.GetJobStatus().GetJobIteration(),
		concurrent: concurrent,
		total:      total,
		digits:     len(strconv.Itoa(total)),
		actDigits:  len(strconv.Itoa(concurrent)),
	}
}

func (u *replicatedJob) update(_ *api.Service, tasks []*api.Task, _ map[string]bool, _ bool) bool {
	if !u.initialized {
		u.writeOverall(0, 0)
		if u.total <= maxProgressBars {
			for i := 1; i <= u.total; i++ {
				u.d.Update(fmt.Sprintf("%d/%d", i, u.total), " ", 0, 0)
			}
		}
		u.initialized = true
	}
	bySlot := map[uint64]*api.Task{}
	for _, t := range tasks {
		if t.GetJobIteration() != u.iteration || !known(t) {
			continue
		}
		if cur, ok := bySlot[t.GetSlot()]; !ok || numbered[t.GetStatus().GetState()] < numbered[cur.GetStatus().GetState()] {
			bySlot[t.GetSlot()] = t
		}
	}
	active, complete := 0, 0
	for i, slot := range sortedSlots(bySlot) {
		t := bySlot[slot]
		if u.total <= maxProgressBars && i < u.total {
			u.h.taskLine(u.d, fmt.Sprintf("%d/%d", i+1, u.total), t, maxJobProgress)
		}
		switch st := t.GetStatus().GetState(); {
		case numbered[st] < numbered[api.TaskState_COMPLETE]:
			active++
		case st == api.TaskState_COMPLETE:
			complete++
		}
	}
	u.writeOverall(active, complete)
	return complete >= u.total
}

func (u *replicatedJob) writeOverall(active, complete int) {
	u.d.Update("job progress", fmt.Sprintf("%*d out of %d complete", u.digits, complete, u.total), int64(complete), int64(u.total))
	desired := min(u.total-complete, u.concurrent)
	u.d.Update("active tasks", fmt.Sprintf("%[1]*[2]d out of %[1]*[3]d tasks", u.actDigits, active, desired), 0, 0)
}

// globalJob shows completed tasks out of the nodes the job started on.
type globalJob struct {
	d           *Display
	h           hinter
	initialized bool
	total       int
	digits      int
	nodes       map[string]bool
}

func (u *globalJob) update(svc *api.Service, tasks []*api.Task, active map[string]bool, _ bool) bool {
	iteration := svc.GetJobStatus().GetJobIteration()
	if !u.initialized {
		if len(tasks) == 0 && len(active) != 0 {
			u.d.Update("job progress", "waiting for tasks", 0, 0)
			return false
		}
		u.nodes = map[string]bool{}
		for _, t := range tasks {
			if t.GetJobIteration() == iteration {
				u.nodes[t.GetNodeId()] = true
			}
		}
		u.total = len(u.nodes)
		u.digits = len(strconv.Itoa(u.total))
		u.writeOverall(0)
		u.initialized = true
	}
	byNode := map[string]*api.Task{}
	for _, t := range tasks {
		if t.GetJobIteration() != iteration || !u.nodes[t.GetNodeId()] {
			continue
		}
		if cur, ok := byNode[t.GetNodeId()]; !ok || numbered[t.GetStatus().GetState()] < numbered[cur.GetStatus().GetState()] {
			byNode[t.GetNodeId()] = t
		}
	}
	complete := 0
	for _, node := range sortedNodes(byNode) {
		t := byNode[node]
		if u.total <= maxProgressBars {
			u.h.taskLine(u.d, node, t, maxJobProgress)
		}
		if t.GetStatus().GetState() == api.TaskState_COMPLETE {
			complete++
		}
	}
	u.writeOverall(complete)
	return complete == u.total
}

func (u *globalJob) writeOverall(complete int) {
	u.d.Update("job progress", fmt.Sprintf("%*d out of %d complete", u.digits, complete, u.total), int64(complete), int64(u.total))
}
