package testcluster

import (
	"os"
	"strconv"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

// manyAgents is the node count of TestManyAgents: 100 keeps the tier
// within its budget; SHOAL_TESTCLUSTER_AGENTS raises it (300 passed in
// about 45 s of wall time on the 2-core machine, under load).
var manyAgents = func() int {
	if n, err := strconv.Atoi(os.Getenv("SHOAL_TESTCLUSTER_AGENTS")); err == nil && n > 0 {
		return n
	}
	return 100
}()

// Many real agents on three managers: a global service reaches
// every node, a replicated one spreads over them, and a manager failover
// does not mark any node down (the new leader's grace period).
func TestManyAgents(t *testing.T) {
	if testing.Short() {
		t.Skip("hundreds of agents")
	}
	start := time.Now()
	c := New(t, Options{Managers: 3, Workers: manyAgents, NoManagerAgents: true, WallLimit: 40 * time.Second})
	t.Logf("%d agents READY in %v (wall), %v of cluster time", manyAgents, time.Since(start).Round(time.Millisecond), c.Clock().Since(c.started))
	c.CreateService(&api.ServiceSpec{
		Annotations: &api.Annotations{Name: "everywhere"},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "agent:1"}},
		Mode:        &api.ServiceSpec_Global{Global: &api.GlobalService{}},
	})
	c.CreateService(replicated("web", "img:1", uint64(2*manyAgents)))
	c.Converge("everywhere", manyAgents, 2*time.Minute)
	c.Converge("web", 2*manyAgents, 2*time.Minute)
	t.Logf("%d tasks running after %v (wall)", 3*manyAgents, time.Since(start).Round(time.Millisecond))
	c.KillLeader()
	c.Leader()
	c.Hold("every node to stay READY", 20*time.Second, func() error {
		nodes := c.Nodes()
		for _, a := range c.Workers() {
			if st := nodes[a.NodeID].GetStatus().GetState(); st != api.NodeStatus_READY {
				return errs([]string{a.Name + " is " + st.String()})
			}
		}
		return nil
	})
	c.Converge("web", 2*manyAgents, time.Minute)
	t.Logf("done after %v (wall)", time.Since(start).Round(time.Millisecond))
}
