package orchestrator

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// An agent's progress reports below RUNNING do not make the orchestrator
// re-read the service's tasks; every change Reconcile tells apart does.
func TestTaskChangeMatters(t *testing.T) {
	at := func(s api.TaskState) *api.Task {
		return &api.Task{Id: "t1", ServiceId: "s1", NodeId: "n1", SpecVersion: 3, DesiredState: api.TaskState_RUNNING,
			Status: &api.TaskStatus{State: s, Timestamp: timestamppb.New(time.Unix(100, 0))}}
	}
	with := func(s api.TaskState, f func(*api.Task)) *api.Task { t := at(s); f(t); return t }
	S := api.TaskState_value
	cases := []struct {
		name     string
		old, cur *api.Task
		want     bool
	}{
		{"ACCEPTED to PREPARING", at(api.TaskState(S["ACCEPTED"])), at(api.TaskState(S["PREPARING"])), false},
		{"ASSIGNED to STARTING", at(api.TaskState_ASSIGNED), at(api.TaskState_STARTING), false},
		{"NEW to PENDING", at(api.TaskState_NEW), at(api.TaskState_PENDING), false},
		{"PENDING to ASSIGNED", at(api.TaskState_PENDING), at(api.TaskState_ASSIGNED), true},
		{"STARTING to RUNNING", at(api.TaskState_STARTING), at(api.TaskState_RUNNING), true},
		{"RUNNING to FAILED", at(api.TaskState_RUNNING), at(api.TaskState_FAILED), true},
		{"FAILED to REJECTED", at(api.TaskState_FAILED), at(api.TaskState_REJECTED), true},
		{"RUNNING again, same time", at(api.TaskState_RUNNING), at(api.TaskState_RUNNING), false},
		{"RUNNING again, new time", at(api.TaskState_RUNNING), with(api.TaskState_RUNNING, func(t *api.Task) { t.Status.Timestamp = timestamppb.New(time.Unix(200, 0)) }), true},
		{"desired state", at(api.TaskState_STARTING), with(api.TaskState_STARTING, func(t *api.Task) { t.DesiredState = api.TaskState_SHUTDOWN }), true},
		{"node", at(api.TaskState_PENDING), with(api.TaskState_PENDING, func(t *api.Task) { t.NodeId = "n2" }), true},
		{"spec version", at(api.TaskState_PREPARING), with(api.TaskState_PREPARING, func(t *api.Task) { t.SpecVersion = 4 }), true},
		{"job iteration", at(api.TaskState_PREPARING), with(api.TaskState_PREPARING, func(t *api.Task) { t.JobIteration = 2 }), true},
	}
	for _, c := range cases {
		if got := taskChangeMatters(c.old, c.cur); got != c.want {
			t.Errorf("%s: matters = %v, want %v", c.name, got, c.want)
		}
	}

	// Through the handler: only events that matter mark the service.
	var marked int
	mark := func(string) { marked++ }
	h := handler{}
	h.Event(raftstore.Event{Action: raftstore.ActionUpdate, Kind: raftstore.KindTask, Old: at(api.TaskState_ASSIGNED), Object: at(api.TaskState_PREPARING)}, mark)
	if marked != 0 {
		t.Fatal("a progress report below RUNNING marked the service")
	}
	h.Event(raftstore.Event{Action: raftstore.ActionUpdate, Kind: raftstore.KindTask, Old: at(api.TaskState_STARTING), Object: at(api.TaskState_RUNNING)}, mark)
	h.Event(raftstore.Event{Action: raftstore.ActionCreate, Kind: raftstore.KindTask, Object: at(api.TaskState_NEW)}, mark)
	h.Event(raftstore.Event{Action: raftstore.ActionDelete, Kind: raftstore.KindTask, Object: at(api.TaskState_SHUTDOWN), Old: at(api.TaskState_SHUTDOWN)}, mark)
	if marked != 3 {
		t.Fatalf("RUNNING, a create and a delete marked %d times, want 3", marked)
	}
}
