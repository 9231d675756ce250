package testcluster

import (
	"errors"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

func replicated(name, image string, n uint64) *api.ServiceSpec {
	return &api.ServiceSpec{
		Annotations: &api.Annotations{Name: name},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: image}},
		Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: n}},
	}
}

// A service's tasks reach the agents through the real dispatcher protocol
// and run on their fake executors, each once.
func TestServiceRunsOnAgents(t *testing.T) {
	c := New(t, Options{Managers: 1, Workers: 2})
	c.CreateService(replicated("web", "img:1", 3))
	c.Converge("web", 3, time.Minute)
	per, _ := runningOn(c, "web")
	if len(per) < 2 {
		t.Errorf("3 tasks on 3 nodes landed on %d: %v", len(per), per)
	}
}

// Node and cluster IDs follow the seed.
func TestSeedNamesTheNodes(t *testing.T) {
	ids := func(seed uint64) []string {
		c := New(t, Options{Managers: 1, Workers: 2, Seed: seed})
		out := []string{c.ClusterID()}
		for _, a := range c.Agents() {
			out = append(out, a.NodeID)
		}
		c.Close()
		return out
	}
	a, b, other := ids(7), ids(7), ids(8)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("seed 7 gave %v, then %v", a, b)
		}
		if a[i] == other[i] {
			t.Fatalf("seeds 7 and 8 both gave %s", a[i])
		}
	}
}

// Time is the cluster's: a node cut off is declared down after three
// missed heartbeats (5 s each) of cluster time, not before, whatever the
// wall time it takes.
func TestNodeDownAfterThreeMissedHeartbeats(t *testing.T) {
	c := New(t, Options{Managers: 1, Workers: 1, NoManagerAgents: true})
	w := c.Workers()[0]
	c.Isolate(w.Name)
	cut := c.Clock().Now()
	c.WaitNode(w, api.NodeStatus_DOWN, time.Minute)
	took := c.Clock().Since(cut)
	if took < 10*time.Second || took > 20*time.Second {
		t.Fatalf("down after %v of cluster time, want 3 heartbeat periods (15s, give or take the last heartbeat)", took)
	}
	t.Logf("down after %v of cluster time (%d steps in all)", took, c.Steps())
	c.Heal()
	c.WaitNode(w, api.NodeStatus_READY, time.Minute)
}

// A wait that cannot be met fails with its last reason once its bound in
// cluster time has passed.
func TestAwaitFailsAfterItsBound(t *testing.T) {
	c := New(t, Options{Managers: 1, NoManagerAgents: true})
	start := c.Clock().Now()
	err := c.Await(5*time.Second, func() error { return errors.New("never") })
	if err == nil {
		t.Fatal("Await met an impossible condition")
	}
	if spent := c.Clock().Since(start); spent < 5*time.Second {
		t.Fatalf("Await gave up after %v of cluster time, before its 5s bound: %v", spent, err)
	}
}
