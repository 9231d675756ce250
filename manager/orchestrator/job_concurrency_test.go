package orchestrator

import (
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

// A job's task that is placed and still running counts against max
// concurrent, and its slot is not refilled after the restart delay: its
// desired state is COMPLETE, not RUNNING. (Found by the in-process cluster
// harness: five of a max-concurrent-2 job ran at once, and a global job
// piled up tasks for a node that was not ready.)
func TestJobTasksInFlightCountAsActive(t *testing.T) {
	s := newSim(t, 0)
	s.svc.Spec.Mode = &api.ServiceSpec_ReplicatedJob{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: 2, TotalCompletions: 5}}
	s.run(1, time.Second)
	if len(s.tasks) != 2 {
		t.Fatalf("%d tasks after the first pass, want 2", len(s.tasks))
	}
	// The tasks are placed and run, for a long time: no pass may add any.
	for i := 0; i < 10; i++ {
		s.step()
		for _, tk := range s.tasks {
			tk.NodeId = "n1"
			tk.Status = &api.TaskStatus{State: api.TaskState_RUNNING, Timestamp: tk.GetStatus().GetTimestamp()}
		}
		s.now = s.now.Add(10 * time.Second) // past the default restart delay
	}
	if len(s.tasks) != 2 {
		t.Fatalf("%d tasks while two run, want 2 (max concurrent)", len(s.tasks))
	}
}
