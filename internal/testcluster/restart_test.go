package testcluster

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/worker/fakeexec"
)

// withRestart is a one-replica service of img with a restart policy.
func withRestart(name, img string, cond api.RestartPolicy_Condition, delay time.Duration, maxAttempts uint64) *api.ServiceSpec {
	s := replicated(name, img, 1)
	s.Task.Restart = &api.RestartPolicy{Condition: cond, Delay: durationpb.New(delay), MaxAttempts: maxAttempts}
	return s
}

// slotHistory returns the tasks of a service, oldest first.
func slotHistory(c *Cluster, name string) []*api.Task {
	ts := c.Tasks(name)
	sort.Slice(ts, func(i, j int) bool {
		return ts[i].GetMeta().GetCreatedAt().AsTime().Before(ts[j].GetMeta().GetCreatedAt().AsTime())
	})
	return ts
}

func states(ts []*api.Task) string {
	s := ""
	for _, t := range ts {
		s += fmt.Sprintf("%v/%v ", t.GetStatus().GetState(), t.DesiredState)
	}
	return s
}

// Lab: restart policies. condition none: a task that fails is not
// replaced.
func TestRestartPolicyNone(t *testing.T) {
	c := New(t, Options{Managers: 1, Workers: 1, NoManagerAgents: true})
	c.Rules.Add(fakeexec.Rule{Image: "crash", Exit: true, ExitCode: 3, After: time.Second})
	c.CreateService(withRestart("once", "crash", api.RestartPolicy_NONE, time.Second, 0))
	c.WaitFor("the task to fail", time.Minute, func() error {
		ts := c.Tasks("once")
		if len(ts) != 1 || ts[0].GetStatus().GetState() != api.TaskState_FAILED {
			return fmt.Errorf("tasks: %s", states(ts))
		}
		if code := ts[0].GetStatus().GetContainer().GetExitCode(); code != 3 {
			return fmt.Errorf("exit code %d, want 3", code)
		}
		return nil
	})
	c.Hold("no replacement", 30*time.Second, func() error {
		if ts := c.Tasks("once"); len(ts) != 1 {
			return fmt.Errorf("tasks: %s", states(ts))
		}
		return nil
	})
}

// condition on-failure: a task that exits 0 stays COMPLETE; one that fails
// is replaced after the restart delay (in cluster time).
func TestRestartPolicyOnFailure(t *testing.T) {
	c := New(t, Options{Managers: 1, Workers: 1, NoManagerAgents: true})
	c.Rules.Add(fakeexec.Rule{Image: "done", Exit: true, ExitCode: 0, After: time.Second})
	c.Rules.Add(fakeexec.Rule{Image: "crash-once", Exit: true, ExitCode: 1, After: time.Second, Times: 1})
	const delay = 10 * time.Second
	c.CreateService(withRestart("ok", "done", api.RestartPolicy_ON_FAILURE, time.Second, 0))
	c.CreateService(withRestart("flaky", "crash-once", api.RestartPolicy_ON_FAILURE, delay, 0))
	var h []*api.Task
	c.WaitFor("flaky's replacement to run", 2*time.Minute, func() error {
		h = slotHistory(c, "flaky")
		if len(h) != 2 || h[0].GetStatus().GetState() != api.TaskState_FAILED || h[1].GetStatus().GetState() != api.TaskState_RUNNING {
			return fmt.Errorf("flaky's history: %s", states(h))
		}
		return nil
	})
	c.Converge("flaky", 1, time.Minute)
	failedAt := h[0].GetStatus().GetTimestamp().AsTime()
	runningAt := h[1].GetStatus().GetTimestamp().AsTime()
	if gap := runningAt.Sub(failedAt); gap < delay {
		t.Errorf("the replacement ran %v after the failure, before the %v restart delay", gap, delay)
	}
	c.Hold("ok to stay complete", 20*time.Second, func() error {
		ts := c.Tasks("ok")
		if len(ts) != 1 {
			return fmt.Errorf("ok's tasks: %s", states(ts))
		}
		if st := ts[0].GetStatus().GetState(); st != api.TaskState_COMPLETE && st > api.TaskState_RUNNING {
			return fmt.Errorf("ok's task is %v", st)
		}
		return nil
	})
}

// condition any with max attempts: a task that keeps crashing is restarted
// max-attempts times, then left failed.
func TestRestartPolicyAnyMaxAttempts(t *testing.T) {
	c := New(t, Options{Managers: 1, Workers: 1, NoManagerAgents: true})
	c.Rules.Add(fakeexec.Rule{Image: "crash", Exit: true, ExitCode: 2, After: time.Second})
	c.CreateService(withRestart("loop", "crash", api.RestartPolicy_ANY, 2*time.Second, 2))
	c.WaitFor("three failed attempts", 2*time.Minute, func() error {
		ts := c.Tasks("loop")
		failed := 0
		for _, t := range ts {
			if t.GetStatus().GetState() == api.TaskState_FAILED {
				failed++
			}
		}
		if failed != 3 {
			return fmt.Errorf("%d failed: %s", failed, states(ts))
		}
		return nil
	})
	c.Hold("no fourth attempt", 30*time.Second, func() error {
		if ts := c.Tasks("loop"); len(ts) != 3 {
			return fmt.Errorf("tasks: %s", states(ts))
		}
		return nil
	})
	h := slotHistory(c, "loop")
	for i, tk := range h {
		if tk.Slot != h[0].Slot {
			t.Errorf("attempt %d is in slot %d, want %d", i, tk.Slot, h[0].Slot)
		}
	}
}

// An unhealthy task is FAILED and replaced (condition any, the default).
func TestUnhealthyTaskIsReplaced(t *testing.T) {
	c := New(t, Options{Managers: 1, Workers: 1, NoManagerAgents: true})
	c.Rules.Add(fakeexec.Rule{Image: "sick", Unhealthy: true, After: 3 * time.Second, Times: 1})
	c.CreateService(withRestart("web", "sick", api.RestartPolicy_ANY, time.Second, 0))
	c.WaitFor("the unhealthy task to be replaced", time.Minute, func() error {
		h := slotHistory(c, "web")
		if len(h) < 2 || h[0].GetStatus().GetState() != api.TaskState_FAILED {
			return fmt.Errorf("history: %s", states(h))
		}
		return nil
	})
	c.Converge("web", 1, time.Minute)
}
