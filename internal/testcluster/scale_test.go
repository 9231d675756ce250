package testcluster

import (
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

// manyAgents is the node count of TestManyAgents: enough to show that the
// harness holds hundreds of agents within the tier's budget (the scale
// issue will push it to thousands).
const manyAgents = 300

// Hundreds of real agents on three managers: a global service reaches
// every node, a replicated one spreads over them, and a manager failover
// does not mark any node down (the new leader's grace period).
func TestManyAgents(t *testing.T) {
	if testing.Short() {
		t.Skip("hundreds of agents")
	}
	start := time.Now()
	c := New(t, Options{Managers: 3, Workers: manyAgents, NoManagerAgents: true})
	t.Logf("%d agents READY in %v (wall), %v of cluster time", manyAgents, time.Since(start).Round(time.Millisecond), c.Clock().Since(c.started))
	c.CreateService(&api.ServiceSpec{
		Annotations: &api.Annotations{Name: "everywhere"},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "agent:1"}},
		Mode:        &api.ServiceSpec_Global{Global: &api.GlobalService{}},
	})
	c.CreateService(replicated("web", "img:1", 2*manyAgents))
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
