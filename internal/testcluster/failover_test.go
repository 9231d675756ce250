package testcluster

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// createVia tries one create through m with a short wall deadline, without
// retries.
func createVia(c *Cluster, m *Manager, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.ControlVia(m).CreateService(ctx, &api.CreateServiceRequest{Spec: replicated(name, "img:1", 0)})
	return errdefs.FromGRPC(err)
}

// hasService reports whether m's own store holds a service named name.
func hasService(m *Manager, name string) bool {
	found := false
	if mgr := m.Manager(); mgr != nil {
		mgr.Store().View(func(tx raftstore.ReadTx) { found = tx.ServiceByName(name) != nil })
	}
	return found
}

// Lab: TestLeaderKillLoop. The leader's node (manager and agent) is killed
// and restarted, twice. Each time another manager leads within a few
// seconds of cluster time, writes through a follower go through, the
// service's tasks come back to full strength without duplicates once the
// dead node is declared down, and the restarted manager catches up.
func TestLeaderKillAndRestart(t *testing.T) {
	c := New(t, Options{Managers: 3, Workers: 2})
	c.CreateService(replicated("web", "img:1", 6))
	c.Converge("web", 6, time.Minute)
	for round := 1; round <= 2; round++ {
		old := c.KillLeader()
		killed := c.Clock().Now()
		l := c.Leader()
		if l == old {
			t.Fatalf("round %d: the killed manager still leads", round)
		}
		t.Logf("round %d: %s leads %v of cluster time after %s was killed", round, l.Name, c.Clock().Since(killed), old.Name)
		name := fmt.Sprintf("after-kill-%d", round)
		c.CreateService(replicated(name, "img:1", 1))
		c.Converge(name, 1, time.Minute)
		c.WaitNode(old.Agent, api.NodeStatus_DOWN, time.Minute)
		c.Converge("web", 6, time.Minute) // the dead node's tasks moved
		old.Start()
		c.WaitReady()
		c.Converged(time.Minute)
		if !hasService(old, name) {
			t.Fatalf("round %d: restarted %s lacks %s", round, old.Name, name)
		}
		c.Converge("web", 6, time.Minute)
		// The returning node's old tasks are stopped, not run twice.
		c.WaitFor("no container of web to run twice", time.Minute, func() error {
			n := 0
			for _, cts := range c.Containers(c.Service("web").Id) {
				n += len(cts)
			}
			if n != 6 {
				return fmt.Errorf("%d containers of web run", n)
			}
			return nil
		})
	}
}

// Lab: TestLeaderPartition. The leader is isolated: the majority elects
// another leader and takes writes; the isolated manager steps down and
// refuses writes; after healing it follows, the majority's write is there
// and the refused one appears nowhere.
func TestPartitionAndHeal(t *testing.T) {
	c := New(t, Options{Managers: 3, Workers: 1})
	c.CreateService(replicated("web", "img:1", 2))
	c.Converge("web", 2, time.Minute)
	old := c.Leader()
	c.Isolate(old.Name)
	c.WaitFor("a leader among the majority", 30*time.Second, func() error {
		if l := c.currentLeader(); l == nil || l == old {
			return errors.New("the majority has no leader of its own yet")
		}
		return nil
	})
	c.WaitFor("the isolated manager to step down", 30*time.Second, func() error {
		if old.Leading() {
			return errors.New("still leads")
		}
		return nil
	})
	if err := createVia(c, old, "refused"); !errdefs.IsUnavailable(err) {
		t.Fatalf("a write on the isolated manager: %v, want unavailable", err)
	}
	var majority *Manager
	for _, m := range c.Managers() {
		if m != old {
			majority = m
			break
		}
	}
	if err := createVia(c, majority, "accepted"); err != nil {
		t.Fatalf("a write on the majority: %v", err)
	}
	c.Heal()
	c.Converged(time.Minute)
	for _, m := range c.Managers() {
		if !hasService(m, "accepted") || hasService(m, "refused") {
			t.Errorf("%s: accepted=%v refused=%v, want true false", m.Name, hasService(m, "accepted"), hasService(m, "refused"))
		}
	}
	c.Converge("web", 2, time.Minute)
}

// Lab: TestQuorumLoss. With 2 of 3 managers down, writes on the survivor
// fail, and say that quorum is lost; the survivor's store still holds the
// state (Control reads fail fast, saying why); running containers are
// left alone. With one manager back, writes
// succeed again.
func TestQuorumLoss(t *testing.T) {
	c := New(t, Options{Managers: 3, Workers: 1, NoManagerAgents: true})
	c.CreateService(replicated("keep", "img:1", 3))
	c.Converge("keep", 3, time.Minute)
	svc := c.Service("keep")
	before := c.Containers(svc.Id)
	leader := c.Leader()
	rest := c.Followers()
	killed, survivor := rest[0], rest[1]
	leader.Stop()
	killed.Stop()
	quorumMsg := regexp.MustCompile(`quorum lost.{0,3}1 of 3 managers reachable`)
	c.WaitFor("a write to fail for want of quorum", 30*time.Second, func() error {
		err := createVia(c, survivor, "q")
		switch {
		case err == nil:
			t.Fatal("a write with 2 of 3 managers down was acknowledged")
		case !quorumMsg.MatchString(err.Error()):
			return fmt.Errorf("the write's error does not say quorum is lost yet: %v", err)
		}
		return nil
	})
	// Reads: the survivor's own store still answers; a Control API read,
	// served by the leader, fails at once with the same explanation
	// instead of hanging (as Docker's `service ls` does without quorum).
	if !hasService(survivor, "keep") {
		t.Fatal("the survivor's store lost the service")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err := c.ControlVia(survivor).ListServices(ctx, &api.ListServicesRequest{})
	cancel()
	if err == nil || !quorumMsg.MatchString(err.Error()) {
		t.Errorf("a Control read without quorum: %v, want an error saying quorum is lost", err)
	}
	c.Hold("the containers to keep running", 20*time.Second, func() error {
		now := c.Containers(svc.Id)
		for name, cts := range before {
			if !slices.Equal(now[name], cts) {
				return fmt.Errorf("containers of %s changed: %v -> %v", name, cts, now[name])
			}
		}
		return nil
	})
	killed.Start()
	c.WaitFor("writes to succeed again", time.Minute, func() error { return createVia(c, survivor, "after") })
	if hasService(survivor, "q") {
		t.Error("a write refused while quorum was lost was applied")
	}
	c.Converge("keep", 3, time.Minute)
}

// A lossy link between the leader and a follower (half the raft messages
// dropped each way) slows the cluster but does not stop it: writes go
// through and the stores converge while the link stays lossy.
func TestLossyLink(t *testing.T) {
	c := New(t, Options{Managers: 3, NoManagerAgents: true})
	l := c.Leader()
	f := c.Followers()[0]
	c.Drop(l.Name, f.Name, 0.5)
	c.Drop(f.Name, l.Name, 0.5)
	for i := 0; i < 10; i++ {
		c.CreateService(replicated(fmt.Sprintf("s%d", i), "img:1", 0))
	}
	c.Converged(time.Minute)
	for _, m := range c.Managers() {
		if !hasService(m, "s9") {
			t.Errorf("%s lacks s9", m.Name)
		}
	}
}
