package testcluster

import (
	"fmt"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/worker/fakeexec"
)

func countState(ts []*api.Task, st api.TaskState) int {
	n := 0
	for _, t := range ts {
		if t.GetStatus().GetState() == st {
			n++
		}
	}
	return n
}

// Lab: replicated jobs. Five completions, two at a time: never more than
// two run at once, exactly five complete, and nothing runs afterwards.
func TestReplicatedJob(t *testing.T) {
	c := New(t, Options{Managers: 1, Workers: 2, NoManagerAgents: true})
	c.Rules.Add(fakeexec.Rule{Image: "batch:1", Exit: true, ExitCode: 0, After: 2 * time.Second})
	c.CreateService(&api.ServiceSpec{
		Annotations: &api.Annotations{Name: "batch"},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "batch:1"}},
		Mode:        &api.ServiceSpec_ReplicatedJob{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: 2, TotalCompletions: 5}},
	})
	most := 0
	c.WaitFor("five completions", 2*time.Minute, func() error {
		running := 0
		for _, a := range c.Agents() {
			running += len(a.Exec.Running())
		}
		most = max(most, running)
		if running > 2 {
			return fmt.Errorf("%d tasks run at once, max concurrent is 2", running) // reported below
		}
		if n := countState(c.Tasks("batch"), api.TaskState_COMPLETE); n != 5 {
			return fmt.Errorf("%d complete: %s", n, c.Describe("batch"))
		}
		return nil
	})
	if most > 2 {
		t.Fatalf("%d tasks ran at once, max concurrent is 2", most)
	}
	c.Hold("the job to stay done", 20*time.Second, func() error {
		ts := c.Tasks("batch")
		if len(ts) != 5 || countState(ts, api.TaskState_COMPLETE) != 5 {
			return fmt.Errorf("tasks: %s", c.Describe("batch"))
		}
		return nil
	})
}

// Lab: global jobs. One completion per node, on every node.
func TestGlobalJob(t *testing.T) {
	c := New(t, Options{Managers: 1, Workers: 3, NoManagerAgents: true})
	c.Rules.Add(fakeexec.Rule{Image: "each:1", Exit: true, ExitCode: 0, After: time.Second})
	c.CreateService(&api.ServiceSpec{
		Annotations: &api.Annotations{Name: "each"},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "each:1"}},
		Mode:        &api.ServiceSpec_GlobalJob{GlobalJob: &api.GlobalJob{}},
	})
	c.WaitFor("one completion per node", 2*time.Minute, func() error {
		ts := c.Tasks("each")
		nodes := map[string]bool{}
		for _, t := range ts {
			if t.GetStatus().GetState() == api.TaskState_COMPLETE {
				nodes[t.NodeId] = true
			}
		}
		if len(ts) != 3 || len(nodes) != 3 {
			return fmt.Errorf("tasks: %s", c.Describe("each"))
		}
		return nil
	})
	for _, w := range c.Workers() {
		cts := w.Exec.Containers()
		if len(cts) != 1 || cts[0].State != fakeexec.Exited || cts[0].Starts != 1 {
			t.Errorf("%s ran %+v, want one container run once", w.Name, cts)
		}
	}
}
