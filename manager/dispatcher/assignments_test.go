package dispatcher

import (
	"testing"

	api "github.com/shoal-project/shoal/proto"
)

// TestRelevantChanges: the agent is sent the changes it acts on: a new
// desired state, a new spec, and service_removed (which caps the stop of a
// task already desired REMOVE by a scale-down); not its own status reports.
func TestRelevantChanges(t *testing.T) {
	base := &api.Task{Id: "t", DesiredState: api.TaskState_REMOVE, Status: &api.TaskStatus{State: api.TaskState_RUNNING}}
	marked := &api.Task{Id: "t", DesiredState: api.TaskState_REMOVE, ServiceRemoved: true, Status: &api.TaskStatus{State: api.TaskState_RUNNING}}
	status := &api.Task{Id: "t", DesiredState: api.TaskState_REMOVE, Status: &api.TaskStatus{State: api.TaskState_SHUTDOWN}}
	if !relevant(base, marked) {
		t.Error("service_removed set on a task being removed is not sent")
	}
	if relevant(base, status) {
		t.Error("a status report is sent back to the agent")
	}
	if !relevant(nil, base) {
		t.Error("a new task is not sent")
	}
}
