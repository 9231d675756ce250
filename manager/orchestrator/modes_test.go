package orchestrator

import (
	"sort"
	"strings"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

func modeNode(id string, state api.NodeStatus_State, avail api.Availability, labels map[string]string) *api.Node {
	return &api.Node{Id: id, Status: &api.NodeStatus{State: state},
		Spec:        &api.NodeSpec{Availability: avail, Annotations: &api.Annotations{Name: id, Labels: labels}},
		Description: &api.NodeDescription{Hostname: id}}
}

// A global service gets one task per ready, active node that meets its
// constraints; its task on a drained node is shut down and the one on a
// removed node is removed.
func TestGlobalServiceOneTaskPerEligibleNode(t *testing.T) {
	nodes := map[string]*api.Node{
		"n1": modeNode("n1", api.NodeStatus_READY, api.Availability_ACTIVE, map[string]string{"zone": "a"}),
		"n2": modeNode("n2", api.NodeStatus_READY, api.Availability_DRAIN, map[string]string{"zone": "a"}),
		"n3": modeNode("n3", api.NodeStatus_DOWN, api.Availability_ACTIVE, map[string]string{"zone": "a"}),
		"n4": modeNode("n4", api.NodeStatus_READY, api.Availability_ACTIVE, map[string]string{"zone": "b"}),
		"n5": modeNode("n5", api.NodeStatus_READY, api.Availability_ACTIVE, map[string]string{"zone": "a"}),
	}
	svc := &api.Service{Id: "g", SpecVersion: 1, Meta: &api.Meta{Version: 1}, Spec: &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "agent"},
		Task: &api.TaskSpec{Container: &api.ContainerSpec{Image: "img"},
			Placement: &api.Placement{Constraints: []string{"node.labels.zone==a"}}},
		Mode: &api.ServiceSpec_Global{Global: &api.GlobalService{}},
	}}
	running := func(id, node string) *api.Task {
		return &api.Task{Id: id, ServiceId: "g", NodeId: node, SpecVersion: 1, DesiredState: api.TaskState_RUNNING,
			Status: &api.TaskStatus{State: api.TaskState_RUNNING}, Spec: svc.Spec.Task, Meta: &api.Meta{Version: 1}}
	}
	a := Reconcile(Input{ServiceID: "g", Service: svc, Nodes: nodes, History: 5, Now: time.Unix(1000, 0),
		Tasks: []*api.Task{running("t1", "n1"), running("t2", "n2"), running("t9", "n9")}})
	var created []string
	for _, c := range a.Create {
		created = append(created, c.NodeId)
	}
	if strings.Join(created, ",") != "n5" {
		t.Fatalf("created on %v, want n5 only (n1 has one; n2 drained, n3 down, n4 fails the constraint)", created)
	}
	desired := map[string]api.TaskState{}
	for _, u := range a.Update {
		desired[u.Id] = u.DesiredState
	}
	if desired["t2"] < api.TaskState_SHUTDOWN || desired["t9"] != api.TaskState_REMOVE {
		t.Fatalf("updates %v, want t2 shut down and t9 removed", desired)
	}
	if _, touched := desired["t1"]; touched {
		t.Fatal("the task on an eligible node was touched")
	}
}

// A replicated job runs TotalCompletions tasks, at most MaxConcurrent at
// once; completed tasks are its record and are neither replaced nor
// removed.
func TestReplicatedJobCompletions(t *testing.T) {
	s := newSim(t, 0)
	s.svc.Spec.Mode = &api.ServiceSpec_ReplicatedJob{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: 2, TotalCompletions: 5}}
	// Job tasks are meant to complete: the sim's agents place them, the
	// test completes them.
	active := func() int {
		n := 0
		for _, tk := range s.tasks {
			if !tk.GetStatus().GetState().Terminal() {
				n++
			}
		}
		return n
	}
	complete := func() {
		for _, tk := range s.tasks {
			if !tk.GetStatus().GetState().Terminal() {
				tk.Status = &api.TaskStatus{State: api.TaskState_COMPLETE}
			}
		}
	}
	var rounds []int
	for i := 0; i < 4; i++ {
		s.step()
		s.agents()
		rounds = append(rounds, active())
		complete()
		s.now = s.now.Add(time.Second)
	}
	if rounds[0] != 2 || rounds[1] != 2 || rounds[2] != 1 || rounds[3] != 0 {
		t.Fatalf("tasks at work per round %v, want 2,2,1,0", rounds)
	}
	var slots []int
	for _, tk := range s.tasks {
		if tk.GetStatus().GetState() != api.TaskState_COMPLETE {
			t.Fatalf("task %s is %v", tk.Id, tk.GetStatus().GetState())
		}
		slots = append(slots, int(tk.Slot))
	}
	sort.Ints(slots)
	if len(slots) != 5 || slots[0] != 1 || slots[4] != 5 {
		t.Fatalf("completed slots %v, want 1..5", slots)
	}
	if a := s.step(); len(a.Create)+len(a.Delete) != 0 {
		t.Fatalf("a finished job still acts: %d creates, %d deletes", len(a.Create), len(a.Delete))
	}
}
