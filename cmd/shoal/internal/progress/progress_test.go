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
	// docker 28.2.2 without a terminal: blank per-task lines, no line
	// that carries a bar, a line once per change of its text, and the
	// lines before the blank block again after it.
	d.Update("overall progress", "0 out of 2 tasks", 0, 0)
	d.Update("1/2", " ", 0, 0)
	d.Update("2/2", " ", 0, 0)
	d.Update("1/2", "new      ", 1, 9)
	d.Update("overall progress", "0 out of 2 tasks", 0, 0)
	d.Update("1/2", "running  ", 9, 9)
	d.Update("overall progress", "0 out of 2 tasks", 0, 0)
	d.Update("1/2", "task: non-zero exit (1)", 0, 0)
	d.Update("1/2", "task: non-zero exit (1)", 0, 0)
	d.Update("overall progress", "1 out of 2 tasks", 0, 0)
	d.Message("job complete")
	want := "overall progress: 0 out of 2 tasks\n1/2:  \n2/2:  \noverall progress: 0 out of 2 tasks\n" +
		"1/2: task: non-zero exit (1)\noverall progress: 1 out of 2 tasks\njob complete\n"
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

func rejected(id string, slot uint64, err string) *api.Task {
	return &api.Task{Id: id, Slot: slot, NodeId: "n1", DesiredState: api.TaskState_SHUTDOWN,
		Status: &api.TaskStatus{State: api.TaskState_REJECTED, Err: err}}
}

func preparing(id string, slot uint64) *api.Task {
	return &api.Task{Id: id, Slot: slot, NodeId: "n1", DesiredState: api.TaskState_RUNNING,
		Status: &api.TaskStatus{State: api.TaskState_PREPARING}}
}

const noImage = "pull 127.0.0.1:5000/nope:latest: not found"

// TestWaitStopsWhenEveryTaskIsRejected: an image that does not exist ends
// the wait as soon as every slot was rejected and a retry was rejected for
// the same reason, with that reason, instead of after ten minutes.
func TestWaitStopsWhenEveryTaskIsRejected(t *testing.T) {
	f := &fakeControl{
		service: func(int) *api.Service { return svcOf(2, nil) },
		tasks: func(p int) []*api.Task {
			ts := []*api.Task{preparing("a", 1), preparing("b", 2)}
			if p >= 1 {
				ts = []*api.Task{rejected("a", 1, noImage), preparing("b", 2)}
			}
			if p >= 2 {
				ts = []*api.Task{rejected("a", 1, noImage), rejected("b", 2, noImage)}
			}
			if p >= 4 { // the restart delay later, slot 1 again
				ts = append(ts, preparing("c", 1))
			}
			if p >= 5 {
				ts[2] = rejected("c", 1, noImage)
			}
			return ts
		},
	}
	out, err := wait(t, f)
	want := "service web cannot start: its tasks were rejected 3 times, every time for the same reason:\n" + noImage + "\n" +
		"The service stays as it is: fix the cause and `shoal service update --force web`, or remove it with `shoal service rm web`."
	if err == nil || err.Error() != want {
		t.Fatalf("err %v, output:\n%s", err, out)
	}
	if f.polls != 6 {
		t.Errorf("stopped after %d polls, want 6", f.polls)
	}
}

// TestWaitSurvivesOneTransientRejection: every slot's first task rejected at
// once (a registry that blinked), then the retries run: it converges.
func TestWaitSurvivesOneTransientRejection(t *testing.T) {
	f := &fakeControl{
		service: func(int) *api.Service { return svcOf(2, nil) },
		tasks: func(p int) []*api.Task {
			ts := []*api.Task{rejected("a", 1, "registry unavailable"), rejected("b", 2, "registry unavailable")}
			switch {
			case p >= 4:
				ts = append(ts, running(3), running(4))
				ts[2].Slot, ts[3].Slot = 1, 2
			case p >= 2:
				ts = append(ts, preparing("c", 1), preparing("d", 2))
			}
			return ts
		},
	}
	out, err := wait(t, f)
	if err != nil || !strings.HasSuffix(out, "verify: Service web converged\n") {
		t.Errorf("err %v, output:\n%s", err, out)
	}
}

// TestWaitKeepsWaitingOnDifferentReasons: rejections for different reasons
// are not "the same reason": the wait goes on (here to its stall timeout).
func TestWaitKeepsWaitingOnDifferentReasons(t *testing.T) {
	f := &fakeControl{
		service: func(int) *api.Service { return svcOf(2, nil) },
		tasks: func(int) []*api.Task {
			return []*api.Task{rejected("a", 1, "no space left on device"), rejected("b", 2, noImage),
				rejected("c", 1, noImage), rejected("d", 2, "no space left on device")}
		},
	}
	var buf bytes.Buffer
	err := Wait(context.Background(), f, "s1", "web", Options{Out: &buf, Clock: clock.NewFake(time.Unix(0, 0)), StallTimeout: 10 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "has not converged: no task changed state for 10s") {
		t.Errorf("err %v", err)
	}
}
