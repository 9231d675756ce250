package convert

import (
	api "github.com/shoal-project/shoal/proto"
)

// CountTasks counts svc's tasks for GET /services?status=true as Docker's
// daemon does. tasks may hold other services' tasks (they are skipped);
// for a job only the current iteration's tasks count. liveNode says whether
// a node is not down (nil: every node is); tasks on down nodes count
// neither as running nor as desired, as in Docker's `service ls`.
//
//   - Running: tasks observed RUNNING whose desired state is not SHUTDOWN
//     or later (a job's tasks are desired COMPLETE).
//   - Desired: the replica count (replicated); the tasks whose desired
//     state is not SHUTDOWN or later (global, global job); for a replicated
//     job, the completions still wanted, at most MaxConcurrent at once.
//   - Completed: tasks observed COMPLETE (jobs; 0 otherwise).
func CountTasks(svc *api.Service, tasks []*api.Task, liveNode func(nodeID string) bool) TaskCounts {
	var c TaskCounts
	spec := svc.GetSpec()
	job := spec.IsJob()
	iteration := svc.GetJobStatus().GetJobIteration()
	var wanted uint64 // tasks whose desired state is not SHUTDOWN or later
	for _, t := range tasks {
		if t.GetServiceId() != svc.GetId() || (job && t.GetJobIteration() != iteration) {
			continue
		}
		if job && t.GetStatus().GetState() == api.TaskState_COMPLETE {
			c.Completed++
		}
		if t.GetNodeId() != "" && liveNode != nil && !liveNode(t.GetNodeId()) {
			continue
		}
		if t.GetDesiredState() < api.TaskState_SHUTDOWN {
			wanted++
			if t.GetStatus().GetState() == api.TaskState_RUNNING {
				c.Running++
			}
		}
	}
	switch m := spec.GetMode().(type) {
	case *api.ServiceSpec_Replicated:
		c.Desired = m.Replicated.GetReplicas()
	case *api.ServiceSpec_ReplicatedJob:
		total, most := m.ReplicatedJob.GetTotalCompletions(), m.ReplicatedJob.GetMaxConcurrent()
		switch {
		case total == 0 && most == 0:
			total, most = 1, 1
		case total == 0:
			total = most
		case most == 0:
			most = total
		}
		if c.Completed < total {
			c.Desired = min(most, total-c.Completed)
		}
	default:
		c.Desired = wanted
	}
	return c
}
