package cluster

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/test/lab"
)

// certOU reads the role in a host's node certificate.
func certOU(t *testing.T, h *lab.Host) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.DataDir, "certificates", "node.crt"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: node.crt holds no PEM block", h.Name)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(c.Subject.OrganizationalUnit, ",")
}

// rowOf is h's row in node ls on from.
func (s *swarm) rowOf(from, h *lab.Host) (nodeRow, error) {
	rows, err := s.nodeLs(from)
	if err != nil {
		return nodeRow{}, err
	}
	for _, r := range rows {
		if r.Hostname == h.Name && r.Status == "Ready" {
			return r, nil
		}
	}
	return nodeRow{}, fmt.Errorf("%s is not Ready in node ls: %v", h.Name, rows)
}

// TestPromoteDemoteAndLeave: a worker promoted becomes a raft member with a
// manager certificate (membership and certificate renewed at run time,
// without a restart); a manager demoted leaves raft first, then gets a worker
// certificate; the leader demoting itself hands leadership off first; a
// worker that leaves removes its containers and shows Down.
func TestPromoteDemoteAndLeave(t *testing.T) {
	s := newSwarm(t, spec{managers: 2, workers: 2, registry: true})
	h1, h2, w1, w2 := s.managers[0], s.managers[1], s.workers[0], s.workers[1]

	// Promote a worker: 3 managers.
	s.sh(h1, "node", "promote", w1.Name)
	lab.WaitFor(t, 30*time.Second, func() error {
		r, err := s.rowOf(h1, w1)
		if err != nil {
			return err
		}
		if r.ManagerStatus != "Reachable" && r.ManagerStatus != "Leader" {
			return fmt.Errorf("%s manager status %q", w1.Name, r.ManagerStatus)
		}
		if ou := certOU(t, w1); ou != "manager" {
			return fmt.Errorf("%s certificate OU %q", w1.Name, ou)
		}
		if m, err := s.raftMembers(h1); err != nil || len(m) != 3 {
			return fmt.Errorf("raft members %v %v", m, err)
		}
		// The promoted node serves the control API itself.
		_, err = try(w1, 5*time.Second, "node", "ls")
		return err
	})

	// Demote the leader itself: it hands off leadership, leaves raft, and
	// goes on as a worker.
	leader, err := s.leaderOf(h2)
	if err != nil {
		t.Fatal(err)
	}
	s.sh(h2, "node", "demote", leader.Name)
	var others []*lab.Host
	for _, h := range []*lab.Host{h1, h2, w1} {
		if h != leader {
			others = append(others, h)
		}
	}
	lab.WaitFor(t, 45*time.Second, func() error {
		r, err := s.rowOf(others[0], leader)
		if err != nil {
			return err
		}
		if r.ManagerStatus != "" {
			return fmt.Errorf("%s still shows %q", leader.Name, r.ManagerStatus)
		}
		if ou := certOU(t, leader); ou != "worker" {
			return fmt.Errorf("%s certificate OU %q", leader.Name, ou)
		}
		if m, err := s.raftMembers(others[0]); err != nil || len(m) != 2 {
			return fmt.Errorf("raft members %v %v", m, err)
		}
		if _, err := try(leader, 5*time.Second, "node", "ls"); err == nil || !strings.Contains(err.Error(), "not a swarm manager") {
			return fmt.Errorf("demoted node still answers node ls (%v)", err)
		}
		nl, err := s.leaderOf(others[0])
		if err != nil {
			return err
		}
		if nl == leader {
			return fmt.Errorf("%s still leads", leader.Name)
		}
		return nil
	})
	// Writes still work with the two remaining managers.
	if _, err := try(others[0], 15*time.Second, "service", "create", "-d", "--name", "after-demote", "--replicas", "0", s.image("busybox")); err != nil {
		t.Fatalf("write after demotion: %v", err)
	}

	// A worker with tasks leaves: its containers go, it shows Down.
	s.sh(others[0], "service", "create", "-d", "--name", "pinned", "--constraint", "node.hostname=="+w2.Name, s.image("busybox"))
	lab.WaitFor(t, 60*time.Second, func() error {
		ids, err := runningContainers(w2)
		if err != nil || len(ids) != 1 {
			return fmt.Errorf("%d containers on %s (%v)", len(ids), w2.Name, err)
		}
		return nil
	})
	if out := s.sh(w2, "swarm", "leave"); !strings.Contains(out, "Node left the swarm.") {
		t.Fatalf("leave: %s", out)
	}
	lab.WaitFor(t, 30*time.Second, func() error {
		if ids, err := runningContainers(w2); err != nil || len(ids) != 0 {
			return fmt.Errorf("%d containers left on %s (%v)", len(ids), w2.Name, err)
		}
		rows, err := s.nodeLs(others[0])
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r.Hostname == w2.Name && r.Status == "Down" {
				return nil
			}
		}
		return fmt.Errorf("%s not Down yet: %v", w2.Name, rows)
	})
	if info, err := s.info(w2); err != nil || info.GetState().String() != "INACTIVE" {
		t.Fatalf("%s after leave: %v %v", w2.Name, info.GetState(), err)
	}
}

// TestRemovedWorkerLeaves: `node rm --force` of a live worker refuses its
// certificate everywhere; the worker notices, stops and removes its
// containers and leaves the swarm, and its replica runs elsewhere.
func TestRemovedWorkerLeaves(t *testing.T) {
	s := newSwarm(t, spec{managers: 1, workers: 2, registry: true})
	m, w1, w2 := s.managers[0], s.workers[0], s.workers[1]
	s.sh(m, "node", "update", "--availability", "drain", m.Name) // replicas only on workers
	s.sh(m, "service", "create", "-d", "--name", "web", "--replicas", "2", "--replicas-max-per-node", "1", s.image("busybox"))
	lab.WaitFor(t, 60*time.Second, func() error {
		for _, w := range []*lab.Host{w1, w2} {
			if ids, err := runningContainers(w); err != nil || len(ids) != 1 {
				return fmt.Errorf("%s runs %d containers (%v)", w.Name, len(ids), err)
			}
		}
		return nil
	})
	s.sh(m, "node", "rm", "--force", w1.Name)
	lab.WaitFor(t, 30*time.Second, func() error {
		if ids, err := runningContainers(w1); err != nil || len(ids) != 0 {
			return fmt.Errorf("%s still runs %d containers (%v)", w1.Name, len(ids), err)
		}
		info, err := s.info(w1)
		if err != nil || info.GetState().String() != "INACTIVE" {
			return fmt.Errorf("%s state %v (%v)", w1.Name, info.GetState(), err)
		}
		return nil
	})
	rows, err := s.nodeLs(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Hostname == w1.Name {
			t.Fatalf("removed node still listed: %v", rows)
		}
	}
	// Its replica is placed again; with one worker left and one per node,
	// the scheduler says why it waits instead of stalling silently.
	lab.WaitFor(t, 30*time.Second, func() error {
		out, err := try(m, 5*time.Second, "service", "ps", "--no-trunc", "web")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "max replicas per node") {
			return fmt.Errorf("service ps:\n%s", out)
		}
		return nil
	})
}
