package dispatcher

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

// sentMessages records what an Assignments stream sends.
type sentMessages struct {
	grpc.ServerStream
	msgs []*api.AssignmentsMessage
}

func (s *sentMessages) Send(m *api.AssignmentsMessage) error {
	s.msgs = append(s.msgs, m)
	return nil
}

// TestLargeSetsAreSentInParts: a node's set of 40 tasks at the spec size
// limit (10 MiB) and 8 configs of 500 KiB goes out in parts, each well
// under the message cap, all but the last marked More, nothing lost or
// reordered; a small set is one message.
func TestLargeSetsAreSentInParts(t *testing.T) {
	env := []string{"A=" + strings.Repeat("x", 120<<10), "B=" + strings.Repeat("y", 120<<10)}
	full := &api.AssignmentsMessage{Type: api.AssignmentsMessage_COMPLETE}
	for i := 0; i < 8; i++ {
		full.Changes = append(full.Changes, &api.AssignmentChange{Assignment: &api.Assignment{Item: &api.Assignment_Config{
			Config: &api.Config{Id: fmt.Sprint("c", i), Spec: &api.ConfigSpec{Data: make([]byte, api.MaxConfigDataBytes)}}}}})
	}
	for i := 0; i < 40; i++ {
		full.Changes = append(full.Changes, &api.AssignmentChange{Assignment: &api.Assignment{Item: &api.Assignment_Task{
			Task: &api.Task{Id: fmt.Sprint("t", i), Spec: &api.TaskSpec{Container: &api.ContainerSpec{Env: env}}}}}})
	}
	s := &sentMessages{}
	if err := sendParts(s, full); err != nil {
		t.Fatal(err)
	}
	if len(s.msgs) < 5 {
		t.Fatalf("%d MiB sent in %d messages", proto.Size(full)>>20, len(s.msgs))
	}
	var got []*api.AssignmentChange
	for i, m := range s.msgs {
		if n := proto.Size(m); n > api.MaxListPageBytes+64<<10 {
			t.Errorf("part %d is %d bytes", i, n)
		}
		if m.More != (i < len(s.msgs)-1) || m.Type != api.AssignmentsMessage_COMPLETE {
			t.Errorf("part %d: more %v, type %v", i, m.More, m.Type)
		}
		got = append(got, m.Changes...)
	}
	if len(got) != len(full.Changes) {
		t.Fatalf("%d changes arrived, want %d", len(got), len(full.Changes))
	}
	for i := range got {
		if got[i] != full.Changes[i] {
			t.Fatalf("change %d out of order", i)
		}
	}

	small := &sentMessages{}
	if err := sendParts(small, &api.AssignmentsMessage{Changes: full.Changes[8:10]}); err != nil || len(small.msgs) != 1 || small.msgs[0].More {
		t.Errorf("a small set: %d messages, err %v", len(small.msgs), err)
	}
}

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
	ported := &api.Task{Id: "t", DesiredState: api.TaskState_REMOVE, Status: &api.TaskStatus{State: api.TaskState_RUNNING},
		Endpoint: &api.Endpoint{Ports: []*api.PortConfig{{PublishedPort: 8082, TargetPort: 80}}}}
	if !relevant(base, ported) {
		t.Error("a new endpoint (service update --publish-add) is not sent")
	}
}
