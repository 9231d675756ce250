package progress

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/cmd/shoal/internal/clock"
	"github.com/shoal-project/shoal/cmd/shoal/internal/golden"
	api "github.com/shoal-project/shoal/proto"
)

func TestDisplayTTY(t *testing.T) {
	var buf bytes.Buffer
	d := NewDisplay(&buf, true, 0)
	d.Update("overall progress", "0 out of 2 tasks", 0, 0)
	d.Update("1/2", "new      ", 1, 9)
	d.Update("2/2", "running  ", 9, 9)
	d.Update("1/2", "new      ", 1, 9) // unchanged: nothing written
	d.Update("overall progress", "1 out of 2 tasks", 0, 0)
	d.Message("Operation continuing in background.")
	d.Update("verify", "after a message", 0, 0)
	golden.Assert(t, strings.ReplaceAll(buf.String(), "\x1b", "^["), "display_tty.golden")
}

func TestDisplayPlain(t *testing.T) {
	var buf bytes.Buffer
	d := NewDisplay(&buf, false, 0)
	d.Update("1/2", " ", 0, 0) // placeholders are not printed
	d.Update("1/2", "new      ", 1, 9)
	d.Update("1/2", "new      ", 1, 9)
	d.Update("1/2", "running  ", 9, 9)
	d.Message("job complete")
	want := "1/2: new\n1/2: running\njob complete\n"
	if buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}

func TestBar(t *testing.T) {
	d := NewDisplay(nil, true, 0)
	if got := d.bar(9, 9); got != "["+strings.Repeat("=", 50)+">] " {
		t.Errorf("full bar %q", got)
	}
	if got := d.bar(0, 9); got != "[>"+strings.Repeat(" ", 50)+"] " {
		t.Errorf("empty bar %q", got)
	}
	if got := NewDisplay(nil, true, 100).bar(5, 9); got != "" {
		t.Errorf("bar on a narrow terminal %q", got)
	}
}

func TestTruncError(t *testing.T) {
	long := strings.Repeat("x", 100)
	if got := truncError("a\nb"); got != "a b" {
		t.Errorf("newline kept: %q", got)
	}
	if got := truncError(long); len([]rune(got)) != maxErrWidth || !strings.HasSuffix(got, "…") {
		t.Errorf("long error %q", got)
	}
}

// fakeControl answers the three calls the display makes.
type fakeControl struct {
	api.ControlClient
	polls   int
	service func(poll int) *api.Service
	tasks   func(poll int) []*api.Task
}

func (f *fakeControl) GetService(context.Context, *api.GetServiceRequest, ...grpc.CallOption) (*api.GetServiceResponse, error) {
	f.polls++
	return &api.GetServiceResponse{Service: f.service(f.polls - 1)}, nil
}

func (f *fakeControl) ListTasks(context.Context, *api.ListTasksRequest, ...grpc.CallOption) (*api.ListTasksResponse, error) {
	return &api.ListTasksResponse{Tasks: f.tasks(f.polls - 1)}, nil
}

func (f *fakeControl) ListNodes(context.Context, *api.ListNodesRequest, ...grpc.CallOption) (*api.ListNodesResponse, error) {
	return &api.ListNodesResponse{Nodes: []*api.Node{{Id: "n1", Status: &api.NodeStatus{State: api.NodeStatus_READY}}}}, nil
}

func svcOf(n uint64, us *api.UpdateStatus) *api.Service {
	return &api.Service{Id: "s1", Spec: &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "web"},
		Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: n}},
	}, UpdateStatus: us}
}

func running(slot uint64) *api.Task {
	return &api.Task{Id: "t" + string(rune('0'+slot)), Slot: slot, NodeId: "n1", DesiredState: api.TaskState_RUNNING,
		Status: &api.TaskStatus{State: api.TaskState_RUNNING}}
}

func wait(t *testing.T, f *fakeControl) (string, error) {
	t.Helper()
	var buf bytes.Buffer
	err := Wait(context.Background(), f, "s1", "web", Options{Out: &buf, Clock: clock.NewFake(time.Unix(0, 0))})
	return buf.String(), err
}

func TestWaitUpdateCompletedEndsEarly(t *testing.T) {
	f := &fakeControl{
		service: func(p int) *api.Service {
			if p >= 2 {
				return svcOf(1, &api.UpdateStatus{State: api.UpdateStatus_COMPLETED})
			}
			return svcOf(1, &api.UpdateStatus{State: api.UpdateStatus_UPDATING})
		},
		tasks: func(int) []*api.Task { return nil },
	}
	out, err := wait(t, f)
	if err != nil || f.polls != 3 {
		t.Errorf("polls %d, err %v, output:\n%s", f.polls, err, out)
	}
}

func TestWaitRollbackPaused(t *testing.T) {
	f := &fakeControl{
		service: func(p int) *api.Service {
			if p >= 1 {
				return svcOf(1, &api.UpdateStatus{State: api.UpdateStatus_ROLLBACK_PAUSED, Message: "rollback failed"})
			}
			return svcOf(1, nil)
		},
		tasks: func(int) []*api.Task { return nil },
	}
	_, err := wait(t, f)
	if err == nil || err.Error() != "service rollback paused: rollback failed" {
		t.Errorf("err %v", err)
	}
}

func TestWaitConvergesAfterMonitor(t *testing.T) {
	f := &fakeControl{
		service: func(int) *api.Service { return svcOf(2, nil) },
		tasks:   func(int) []*api.Task { return []*api.Task{running(1), running(2)} },
	}
	out, err := wait(t, f)
	if err != nil || !strings.HasSuffix(out, "verify: Service web converged\n") {
		t.Errorf("err %v, output:\n%s", err, out)
	}
	if f.polls != 26 { // converged at the first look, then 5 s at 200 ms per poll
		t.Errorf("%d polls", f.polls)
	}
}
