package testcluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
)

// runningOn counts a service's RUNNING tasks per node name, and fails
// when one runs on a node in avoid.
func runningOn(c *Cluster, name string, avoid ...*Agent) (map[string]int, error) {
	names := map[string]string{}
	for _, a := range c.Agents() {
		names[a.NodeID] = a.Name
	}
	out := map[string]int{}
	for _, t := range c.Running(name) {
		n := names[t.NodeId]
		for _, a := range avoid {
			if a.NodeID == t.NodeId {
				return out, fmt.Errorf("task %s of %s runs on %s", t.Id, name, n)
			}
		}
		out[n]++
	}
	return out, nil
}

// Lab: TestWorkerKill. A worker is cut off from the managers: once it is
// DOWN its tasks run elsewhere (while its own containers run on, as they
// would on a real host); when it comes back its stale tasks are shut down,
// so no slot runs twice.
func TestWorkerLossAndReturn(t *testing.T) {
	c := New(t, Options{Managers: 1, Workers: 3, NoManagerAgents: true})
	c.CreateService(replicated("web", "img:1", 6))
	c.Converge("web", 6, time.Minute)
	lost := c.Workers()[0]
	svc := c.Service("web")
	held := len(c.Containers(svc.Id)[lost.Name])
	if held == 0 {
		t.Fatalf("no task of web on %s: %s", lost.Name, c.Describe("web"))
	}
	c.Isolate(lost.Name)
	c.WaitNode(lost, api.NodeStatus_DOWN, time.Minute)
	c.WaitFor("web's tasks to run on the other nodes", time.Minute, func() error {
		per, err := runningOn(c, "web", lost)
		if err != nil {
			return err
		}
		if n := per[c.Workers()[1].Name] + per[c.Workers()[2].Name]; n != 6 {
			return fmt.Errorf("%d tasks run: %s", n, c.Describe("web"))
		}
		return nil
	})
	if got := len(c.Containers(svc.Id)[lost.Name]); got != held {
		t.Errorf("the cut-off node's containers changed while it was away: %d -> %d", held, got)
	}
	c.Heal()
	c.WaitNode(lost, api.NodeStatus_READY, time.Minute)
	c.Converge("web", 6, time.Minute) // counts every container: the stale ones are gone
	if n := len(c.Containers(svc.Id)[lost.Name]); n != 0 {
		t.Errorf("%d containers of web still run on %s after its return", n, lost.Name)
	}
}

// The same with the agent's process gone (shoald stopped) instead of the
// network: the tasks move, and the restarted agent does not run its old
// tasks twice.
func TestWorkerRestartNoDuplicates(t *testing.T) {
	c := New(t, Options{Managers: 1, Workers: 2, NoManagerAgents: true})
	c.CreateService(replicated("web", "img:1", 4))
	c.Converge("web", 4, time.Minute)
	w := c.Workers()[0]
	w.Stop()
	c.WaitNode(w, api.NodeStatus_DOWN, time.Minute)
	c.Converge("web", 4, time.Minute)
	w.Start()
	c.WaitNode(w, api.NodeStatus_READY, time.Minute)
	c.Converge("web", 4, time.Minute)
	if n := len(c.Containers(c.Service("web").Id)[w.Name]); n != 0 {
		t.Errorf("%d stale containers of web run on %s", n, w.Name)
	}
}

// setAvailability changes a node's availability through the Control API.
func setAvailability(c *Cluster, a *Agent, av api.Availability) {
	c.tb.Helper()
	c.Call("update node "+a.Name, func(ctx context.Context, cl api.ControlClient) error {
		resp, err := cl.GetNode(ctx, &api.GetNodeRequest{NodeId: a.NodeID})
		if err != nil {
			return err
		}
		spec := proto.Clone(resp.Node.Spec).(*api.NodeSpec)
		spec.Availability = av
		_, err = cl.UpdateNode(ctx, &api.UpdateNodeRequest{NodeId: a.NodeID, NodeVersion: resp.Node.Meta.Version, Spec: spec})
		if errdefs.IsConflict(errdefs.FromGRPC(err)) {
			return errdefs.Unavailable("conflict: %v", err)
		}
		return err
	})
}

// Lab: TestWorkerDrain. Draining a node moves its tasks away and stops its
// containers; making it active again lets new tasks land there.
func TestDrain(t *testing.T) {
	c := New(t, Options{Managers: 1, Workers: 3, NoManagerAgents: true})
	c.CreateService(replicated("web", "img:1", 6))
	c.Converge("web", 6, time.Minute)
	d := c.Workers()[0]
	setAvailability(c, d, api.Availability_DRAIN)
	c.WaitFor("web to leave the drained node", time.Minute, func() error {
		if _, err := runningOn(c, "web", d); err != nil {
			return err
		}
		return c.CheckRunning("web", 6)
	})
	if n := len(d.Exec.Running()); n != 0 {
		t.Errorf("%d containers still run on the drained node", n)
	}
	setAvailability(c, d, api.Availability_ACTIVE)
	c.UpdateService("web", func(s *api.ServiceSpec) {
		s.Mode = &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 9}}
	})
	c.Converge("web", 9, time.Minute)
	per, _ := runningOn(c, "web")
	if per[d.Name] == 0 {
		t.Errorf("no new task landed on the reactivated node: %v", per)
	}
}

// Lab: global services. A node that joins gets the global service's task;
// a drained one loses it.
func TestGlobalServiceOnNodeJoin(t *testing.T) {
	c := New(t, Options{Managers: 1, Workers: 2})
	c.CreateService(&api.ServiceSpec{
		Annotations: &api.Annotations{Name: "agent"},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "agent:1"}},
		Mode:        &api.ServiceSpec_Global{Global: &api.GlobalService{}},
	})
	c.Converge("agent", 3, time.Minute) // the manager's node runs one too
	joined := c.AddAgent()
	c.WaitReady()
	c.Converge("agent", 4, time.Minute)
	if n := len(joined.Exec.Running()); n != 1 {
		t.Fatalf("the joined node runs %d tasks, want 1", n)
	}
	setAvailability(c, joined, api.Availability_DRAIN)
	c.Converge("agent", 3, time.Minute)
	if n := len(joined.Exec.Running()); n != 0 {
		t.Fatalf("the drained node runs %d tasks, want 0", n)
	}
}

// Lab: TestJoinFiveNodes, in part. Workers join through the CA service
// with the worker token, get READY, and run tasks; a token with a wrong
// secret is refused.
func TestJoinWithToken(t *testing.T) {
	c := New(t, Options{Managers: 1, NoManagerAgents: true})
	var joined []*Agent
	for i := 0; i < 2; i++ {
		joined = append(joined, c.JoinWorker())
	}
	c.WaitReady()
	for _, a := range joined {
		if role := c.Nodes()[a.NodeID].GetRole(); role != api.NodeRole_WORKER {
			t.Errorf("%s has role %v", a.Name, role)
		}
	}
	c.CreateService(replicated("web", "img:1", 4))
	c.Converge("web", 4, time.Minute)
	for _, a := range joined {
		if len(a.Exec.Running()) == 0 {
			t.Errorf("%s runs no task", a.Name)
		}
	}
	// The right CA digest with a secret of its own.
	forged, err := pki.GenerateJoinToken(c.RootCA().Digest())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := pki.ParseJoinToken(forged)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before := len(c.Nodes())
	if _, _, err := c.join(ctx, "rogue", c.Leader().Addr, tok); err == nil {
		t.Fatal("a join with a forged token got a certificate")
	} else {
		t.Logf("forged token: %v", err)
	}
	if n := len(c.Nodes()); n != before {
		t.Fatalf("the forged join recorded a node: %d -> %d nodes", before, n)
	}
}
