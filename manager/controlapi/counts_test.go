package controlapi

import (
	"testing"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// A running task of a job (desired COMPLETE, as the orchestrator makes
// them) counts as running in `service ls`; one being shut down does not.
func TestCountTasksOfAJob(t *testing.T) {
	svc := &api.Service{Id: "job", JobStatus: &api.JobStatus{JobIteration: 1}, Spec: &api.ServiceSpec{
		Mode: &api.ServiceSpec_ReplicatedJob{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: 2, TotalCompletions: 5}}}}
	task := func(id string, desired, state api.TaskState) *api.Task {
		return &api.Task{Id: id, ServiceId: "job", JobIteration: 1, DesiredState: desired, Status: &api.TaskStatus{State: state}}
	}
	s, _ := newTestServer(t)
	if err := s.store.Restore(1, []raftstore.Object{svc,
		task("t1", api.TaskState_COMPLETE, api.TaskState_COMPLETE),
		task("t2", api.TaskState_COMPLETE, api.TaskState_RUNNING),
		task("t3", api.TaskState_SHUTDOWN, api.TaskState_RUNNING),
	}); err != nil {
		t.Fatal(err)
	}
	var c *api.ServiceCounts
	s.store.View(func(tx raftstore.ReadTx) { c = CountTasks(tx, tx.Service("job")) })
	if c.Running != 1 || c.Completed != 1 || c.Desired != 2 {
		t.Errorf("counts %v, want 1 running, 1 completed, 2 desired", c)
	}
}
