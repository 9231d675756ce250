package commands

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/cmd/shoal/internal/daemontest"
	api "github.com/shoal-project/shoal/proto"
)

const (
	run  = api.TaskState_RUNNING
	shut = api.TaskState_SHUTDOWN
	done = api.TaskState_COMPLETE
)

// step is one task's state from a given poll on.
type step struct {
	from  int
	state api.TaskState
	err   string
	msg   string
}

// scriptedTask follows its steps poll by poll.
type scriptedTask struct {
	id, node string
	slot     uint64
	desired  api.TaskState
	version  uint64
	steps    []step
	shutFrom int // from this poll on, desired SHUTDOWN (0: never)
}

func (s scriptedTask) at(svcID, name string, poll int, now time.Time) *api.Task {
	var cur *step
	for i := range s.steps {
		if poll >= s.steps[i].from {
			cur = &s.steps[i]
		}
	}
	if cur == nil {
		return nil
	}
	t := daemontest.Task(s.id, svcID, name, s.slot, s.node, s.desired, cur.state, 0)
	t.Status.Err, t.Status.Message = cur.err, cur.msg
	t.Status.Timestamp = daemontest.Ago(daemontest.Now.Sub(now))
	if s.version != 0 {
		t.SpecVersion = s.version
	}
	t.JobIteration = 1
	if s.shutFrom > 0 && poll >= s.shutFrom {
		t.DesiredState = shut
	}
	return t
}

// onPoll makes fn change the store before each poll of the tasks (fn gets
// the number of earlier polls), as the orchestrator, scheduler and workers
// would between two polls.
func (e *env) onPoll(fn func(poll int, f *daemontest.Fixture)) {
	e.srv.Before("ListTasks", func(n int, _ proto.Message) {
		e.srv.Edit(func(f *daemontest.Fixture) { fn(n, f) })
	})
}

// setTasks replaces the tasks of the service named name with tasks.
func setTasks(f *daemontest.Fixture, name string, tasks func(svcID string) []*api.Task) {
	svc := f.Service(name)
	if svc == nil {
		return // not created yet
	}
	f.Tasks = slices.DeleteFunc(f.Tasks, func(t *api.Task) bool { return t.GetServiceId() == svc.GetId() })
	f.Tasks = append(f.Tasks, tasks(svc.GetId())...)
}

// script makes the tasks of the service named name follow the scripted
// tasks, poll by poll.
func (e *env) script(name string, tasks ...scriptedTask) {
	e.onPoll(func(poll int, f *daemontest.Fixture) {
		setTasks(f, name, func(svcID string) []*api.Task {
			var out []*api.Task
			for _, s := range tasks {
				if t := s.at(svcID, name, poll, e.clock.Now()); t != nil {
					out = append(out, t)
				}
			}
			return out
		})
	})
}

// onGetService makes fn change the service named name before the n-th
// GetService (n from 0), as the updater would.
func (e *env) onGetService(name string, fn func(n int, svc *api.Service)) {
	e.srv.Before("GetService", func(n int, _ proto.Message) {
		e.srv.Edit(func(f *daemontest.Fixture) {
			if svc := f.Service(name); svc != nil {
				fn(n, svc)
			}
		})
	})
}

// ramp is a task going new -> pending -> assigned -> preparing -> running,
// starting at poll from.
func ramp(id, node string, slot uint64, from int) scriptedTask {
	return scriptedTask{id: id, node: node, slot: slot, desired: run, steps: []step{
		{from: from, state: api.TaskState_NEW},
		{from: from + 1, state: api.TaskState_PENDING},
		{from: from + 2, state: api.TaskState_ASSIGNED},
		{from: from + 3, state: api.TaskState_PREPARING},
		{from: from + 4, state: api.TaskState_STARTING},
		{from: from + 5, state: run},
	}}
}

func TestProgressCreatePlain(t *testing.T) {
	e := newEnv(t)
	e.script("web2",
		ramp("t1aaaaaaaaaaaaaaaaaaaaaaa", daemontest.Node1, 1, 1),
		ramp("t2aaaaaaaaaaaaaaaaaaaaaaa", daemontest.Node2, 2, 2),
		ramp("t3aaaaaaaaaaaaaaaaaaaaaaa", daemontest.Node10, 3, 3))
	e.golden("progress_create_plain", "service", "create", "--name", "web2", "--replicas", "3", "nginx")
}

func TestProgressCreateTTY(t *testing.T) {
	e := newEnv(t)
	e.tty = true
	e.script("web2",
		ramp("t1aaaaaaaaaaaaaaaaaaaaaaa", daemontest.Node1, 1, 1),
		ramp("t2aaaaaaaaaaaaaaaaaaaaaaa", daemontest.Node2, 2, 1))
	e.golden("progress_create_tty", "service", "create", "--name", "web2", "--replicas", "2", "nginx")
}

func TestProgressCreateTTYNarrow(t *testing.T) {
	e := newEnv(t)
	e.tty, e.width = true, 80
	e.script("web2", ramp("t1aaaaaaaaaaaaaaaaaaaaaaa", daemontest.Node1, 1, 0))
	e.golden("progress_create_tty_narrow", "service", "create", "--name", "web2", "nginx")
}

func TestProgressQuiet(t *testing.T) {
	e := newEnv(t)
	e.script("web2", ramp("t1aaaaaaaaaaaaaaaaaaaaaaa", daemontest.Node1, 1, 0))
	e.golden("progress_create_quiet", "service", "create", "-q", "--name", "web2", "nginx")
}

func TestProgressTaskErrorAndRecovery(t *testing.T) {
	e := newEnv(t)
	flaky := scriptedTask{id: "t1aaaaaaaaaaaaaaaaaaaaaaa", node: daemontest.Node1, slot: 1, desired: run, steps: []step{
		{from: 0, state: api.TaskState_PENDING, err: "no suitable node (insufficient memory on 4 nodes)"},
		{from: 3, state: api.TaskState_ASSIGNED},
		{from: 4, state: run},
		{from: 8, state: api.TaskState_FAILED, err: "task: non-zero exit (137)"},
	}}
	flaky.shutFrom = 9 // the failed task is shut down once replaced
	replacement := ramp("t2aaaaaaaaaaaaaaaaaaaaaaa", daemontest.Node2, 1, 9)
	e.script("web2", flaky, replacement)
	e.golden("progress_task_error", "service", "create", "--name", "web2", "nginx")
}

func TestProgressGlobal(t *testing.T) {
	e := newEnv(t)
	e.script("agent",
		ramp("t1aaaaaaaaaaaaaaaaaaaaaaa", daemontest.Node1, 0, 2),
		ramp("t2aaaaaaaaaaaaaaaaaaaaaaa", daemontest.Node2, 0, 2),
		// node3 is down: its task is not waited for.
		scriptedTask{id: "t3aaaaaaaaaaaaaaaaaaaaaaa", node: daemontest.Node3, desired: run, steps: []step{{from: 2, state: api.TaskState_ASSIGNED}}})
	e.golden("progress_global", "service", "create", "--mode", "global", "--name", "agent", "nginx")
}

func TestProgressReplicatedJob(t *testing.T) {
	e := newEnv(t)
	job := func(id string, slot uint64, from int) scriptedTask {
		return scriptedTask{id: id, node: daemontest.Node1, slot: slot, desired: done, steps: []step{
			{from: from, state: api.TaskState_PENDING}, {from: from + 1, state: run}, {from: from + 3, state: done},
		}}
	}
	e.script("once", job("j1aaaaaaaaaaaaaaaaaaaaaaa", 1, 1), job("j2aaaaaaaaaaaaaaaaaaaaaaa", 2, 1), job("j3aaaaaaaaaaaaaaaaaaaaaaa", 3, 5))
	e.golden("progress_replicated_job", "service", "create", "--mode", "replicated-job", "--replicas", "3", "--max-concurrent", "2", "--name", "once", "busybox", "true")
}

// The update pauses: the error says why and which task failed.
func TestProgressUpdatePaused(t *testing.T) {
	e := newEnv(t)
	e.script("web",
		scriptedTask{id: "n1aaaaaaaaaaaaaaaaaaaaaaa", node: daemontest.Node1, slot: 1, desired: run, version: 2, steps: []step{
			{from: 1, state: api.TaskState_PREPARING}, {from: 2, state: run},
			{from: 4, state: api.TaskState_FAILED, err: "task: non-zero exit (1)"},
		}})
	e.onGetService("web", func(n int, svc *api.Service) {
		switch {
		case n >= 6:
			svc.UpdateStatus = &api.UpdateStatus{State: api.UpdateStatus_PAUSED, Message: "update paused due to failure or early termination of task n1aaaaaaaaaa"}
		case n >= 1:
			svc.UpdateStatus = &api.UpdateStatus{State: api.UpdateStatus_UPDATING, Message: "update in progress"}
		}
	})
	r := e.golden("progress_update_paused", "service", "update", "--image", "nginx:broken", "web")
	if r.Code != 1 {
		t.Errorf("exit %d, want 1", r.Code)
	}
}

// A stale paused status from an earlier update does not end a new one.
func TestProgressIgnoresStaleStatus(t *testing.T) {
	e := newEnv(t)
	e.srv.Edit(func(f *daemontest.Fixture) {
		f.Service("web").UpdateStatus = &api.UpdateStatus{State: api.UpdateStatus_PAUSED, Message: "old news"}
	})
	e.srv.Edit(func(f *daemontest.Fixture) { f.Service("web").Spec.Update.Monitor = nil })
	e.script("web",
		scriptedTask{id: "n1aaaaaaaaaaaaaaaaaaaaaaa", node: daemontest.Node1, slot: 1, desired: run, steps: []step{{from: 0, state: run}}},
		scriptedTask{id: "n2aaaaaaaaaaaaaaaaaaaaaaa", node: daemontest.Node2, slot: 2, desired: run, steps: []step{{from: 0, state: run}}})
	// A scale changes no spec version: the tasks of version 1 count.
	e.golden("progress_stale_status", "service", "scale", "web=2")
}

func TestProgressRollback(t *testing.T) {
	e := newEnv(t)
	e.srv.Edit(func(f *daemontest.Fixture) { // the previous spec: 1 replica of redis
		web := f.Service("web")
		prev := proto.Clone(web.Spec).(*api.ServiceSpec)
		prev.Mode = &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 1}}
		prev.Task.Container.Image = "redis:7"
		prev.Update = &api.UpdateConfig{Monitor: durationOf(time.Second)}
		web.PreviousSpec = prev
	})
	e.script("web",
		scriptedTask{id: "r1aaaaaaaaaaaaaaaaaaaaaaa", node: daemontest.Node2, slot: 1, desired: run, version: 2, steps: []step{
			{from: 0, state: api.TaskState_READY}, {from: 2, state: run},
		}})
	e.onGetService("web", func(n int, svc *api.Service) {
		if n >= 3 {
			svc.UpdateStatus = &api.UpdateStatus{State: api.UpdateStatus_ROLLBACK_COMPLETED, Message: "rollback completed"}
		}
	})
	e.golden("progress_rollback", "service", "rollback", "web")
}

func TestProgressInterrupted(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.ctx = ctx
	task := ramp("t1aaaaaaaaaaaaaaaaaaaaaaa", daemontest.Node1, 1, 0)
	e.onPoll(func(poll int, f *daemontest.Fixture) {
		setTasks(f, "web2", func(svcID string) []*api.Task { return []*api.Task{task.at(svcID, "web2", poll, e.clock.Now())} })
		if poll == 3 {
			cancel() // the user presses Ctrl-C
		}
	})
	r := e.golden("progress_interrupted", "service", "create", "--name", "web2", "nginx")
	if r.Code != 0 {
		t.Errorf("exit %d, want 0 as Docker", r.Code)
	}
}

// A task that cannot be placed ends the display after the stall bound, with
// the reason on screen; a task long in PENDING shows why.
func TestProgressStalls(t *testing.T) {
	e := newEnv(t)
	tasks := []scriptedTask{
		{id: "s1aaaaaaaaaaaaaaaaaaaaaaa", slot: 1, desired: run, steps: []step{
			{from: 0, state: api.TaskState_PENDING, err: "no suitable node (insufficient memory on 4 nodes)"}}},
		{id: "s2aaaaaaaaaaaaaaaaaaaaaaa", slot: 2, desired: run, steps: []step{
			{from: 0, state: api.TaskState_PENDING, msg: "waiting for the allocator"}}},
	}
	var stuck time.Time
	e.onPoll(func(poll int, f *daemontest.Fixture) {
		if poll == 0 {
			stuck = e.clock.Now()
		}
		setTasks(f, "big", func(svcID string) []*api.Task {
			var out []*api.Task
			for _, s := range tasks { // state and timestamps frozen at the start
				out = append(out, s.at(svcID, "big", 0, stuck))
			}
			return out
		})
		e.clock.Advance(20 * time.Second)
	})
	r := e.golden("progress_stall", "service", "create", "--replicas", "2", "--name", "big", "nginx")
	if r.Code != 1 || !strings.Contains(r.Err, "has not converged") {
		t.Errorf("exit %d, stderr %q", r.Code, r.Err)
	}
	if polls := len(e.srv.Requests("ListTasks")); polls > 40 {
		t.Errorf("%d polls for a 10 minute bound at 20 s each", polls)
	}
}

func TestProgressScaleSeveral(t *testing.T) {
	e := newEnv(t)
	e.srv.Edit(func(f *daemontest.Fixture) { f.Service("web").Spec.Update.Monitor = durationOf(time.Second) })
	e.srv.Edit(func(f *daemontest.Fixture) {
		f.Service("cache").Spec.Update = &api.UpdateConfig{Monitor: durationOf(time.Second)}
	})
	var tasks []scriptedTask
	for i := 1; i <= 2; i++ {
		tasks = append(tasks, scriptedTask{id: fmt.Sprintf("w%daaaaaaaaaaaaaaaaaaaaaaa", i), node: daemontest.Node1, slot: uint64(i), desired: run, steps: []step{{from: 0, state: run}}})
	}
	e.onPoll(func(_ int, f *daemontest.Fixture) {
		for _, name := range []string{"web", "cache"} {
			setTasks(f, name, func(svcID string) []*api.Task {
				var out []*api.Task
				for _, s := range tasks {
					s.id = name[:1] + s.id[1:]
					out = append(out, s.at(svcID, name, 0, e.clock.Now()))
				}
				return out
			})
		}
	})
	e.golden("progress_scale_several", "service", "scale", "web=2", "cache=2")
}

// An image that does not exist: every task is rejected for the same reason,
// and `service create` says so and fails at once instead of waiting ten
// minutes. The service is left in place.
func TestProgressCreateMissingImage(t *testing.T) {
	e := newEnv(t)
	const reason = "pull 127.0.0.1:5000/nope:latest: not found"
	attempt := func(id string, slot uint64, from int) scriptedTask {
		return scriptedTask{id: id, node: daemontest.Node1, slot: slot, desired: run, steps: []step{
			{from: from, state: api.TaskState_PENDING},
			{from: from + 1, state: api.TaskState_PREPARING},
			{from: from + 2, state: api.TaskState_REJECTED, err: reason},
		}}
	}
	e.script("ghost", attempt("t1aaaaaaaaaaaaaaaaaaaaaaa", 1, 0), attempt("t2aaaaaaaaaaaaaaaaaaaaaaa", 2, 1),
		attempt("t3aaaaaaaaaaaaaaaaaaaaaaa", 1, 6))
	r := e.golden("progress_missing_image", "service", "create", "--name", "ghost", "--replicas", "2", "127.0.0.1:5000/nope")
	if r.Code != 1 {
		t.Errorf("exit %d", r.Code)
	}
	if n := len(e.srv.Requests("GetService")); n > 20 {
		t.Errorf("%d polls", n)
	}
}
