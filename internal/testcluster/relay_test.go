package testcluster

import (
	"fmt"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

// Agents whose sessions a follower carries stay READY on heartbeats that
// the follower relays to the leader in batches: fewer relay calls than
// heartbeats, and the leader's dispatcher counts each heartbeat.
func TestFollowersRelayHeartbeats(t *testing.T) {
	c := New(t, Options{Managers: 3, Workers: 9, NoManagerAgents: true})
	leader := c.Leader()
	c.Hold("every node to stay READY", 30*time.Second, func() error {
		nodes := c.Nodes()
		for _, a := range c.Workers() {
			if st := nodes[a.NodeID].GetStatus().GetState(); st != api.NodeStatus_READY {
				return fmt.Errorf("%s is %v", a.Name, st)
			}
		}
		return nil
	})
	var calls, beats uint64
	for _, m := range c.Followers() {
		cl, hb := m.Manager().RelayedHeartbeats()
		calls, beats = calls+cl, beats+hb
	}
	if l, _ := leader.Manager().RelayedHeartbeats(); l != 0 {
		t.Errorf("the leader relayed %d calls: it should answer its agents itself", l)
	}
	if beats == 0 {
		t.Fatal("no heartbeat was relayed: no agent's session went through a follower, or followers forward each heartbeat")
	}
	if calls > beats {
		t.Fatalf("%d relay calls for %d heartbeats", calls, beats)
	}
	t.Logf("followers relayed %d heartbeats in %d calls", beats, calls)
}
