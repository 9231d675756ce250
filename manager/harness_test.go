package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/internal/ids"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// testCluster is N managers in one process over a raftstore.MemNetwork,
// for the package's internal tests (internal/testcluster is the full
// harness, with agents, gRPC and mTLS; it cannot be used from inside
// package manager, which it imports),
// with the Cluster object and Node objects written as `swarm init` and
// `swarm join` would, and simulated worker nodes (Node objects without an
// agent). Calls go to the managers' Control servers directly.
type testCluster struct {
	t         *testing.T
	net       *raftstore.MemNetwork
	clusterID string
	members   []*testMember
}

type testMember struct {
	nodeID, addr, path string
	m                  *Manager
	cancel             context.CancelFunc
	done               chan error
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func noDial(context.Context, string) (*grpc.ClientConn, error) {
	return nil, errors.New("in-process test cluster: no network")
}

// newTestCluster starts n managers and registers workers simulated nodes.
func newTestCluster(t *testing.T, n, workers int) *testCluster {
	t.Helper()
	c := &testCluster{t: t, net: raftstore.NewMemNetwork(), clusterID: ids.New()}
	dir := memDir(t)
	for i := 0; i < n; i++ {
		c.members = append(c.members, &testMember{
			nodeID: ids.New(), addr: fmt.Sprintf("manager%d:4242", i),
			path: filepath.Join(dir, fmt.Sprintf("m%d", i), "raft.db"),
		})
	}
	t.Cleanup(func() {
		for _, m := range c.members {
			c.stop(m)
		}
	})
	first := c.members[0]
	c.start(first, raftstore.Bootstrap)
	c.eventually(20*time.Second, "the first manager to lead", first.m.Leading)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := first.m.Store().Update(ctx, func(tx *raftstore.Tx) error {
		cl := &api.Cluster{Id: c.clusterID, Spec: &api.ClusterSpec{
			Annotations:   &api.Annotations{Name: "default"},
			Dispatcher:    &api.DispatcherSettings{HeartbeatPeriod: durationpb.New(api.DefaultHeartbeatPeriod)},
			Orchestration: &api.OrchestrationSettings{TaskHistoryRetentionLimit: api.DefaultTaskHistory},
		}}
		if err := tx.Create(cl); err != nil {
			return err
		}
		for i := 0; i < workers; i++ {
			if err := tx.Create(simulatedNode(ids.New(), fmt.Sprintf("worker%d", i), api.NodeRole_WORKER)); err != nil {
				return err
			}
		}
		return tx.Create(simulatedNode(first.nodeID, "manager0", api.NodeRole_MANAGER))
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range c.members[1:] {
		c.join(m, fmt.Sprintf("manager%d", i+1))
	}
	return c
}

func simulatedNode(id, hostname string, role api.NodeRole) *api.Node {
	return &api.Node{
		Id:          id,
		Spec:        &api.NodeSpec{DesiredRole: role, Membership: api.NodeSpec_ACCEPTED},
		Description: &api.NodeDescription{Hostname: hostname, Resources: &api.Resources{NanoCpus: 2e9, MemoryBytes: 4 << 30}},
		Status:      &api.NodeStatus{State: api.NodeStatus_READY},
		Role:        role,
	}
}

func (c *testCluster) start(m *testMember, mode raftstore.StartMode) {
	c.t.Helper()
	mgr, err := New(Config{
		NodeID: m.nodeID, ClusterID: c.clusterID, Addr: m.addr, RaftPath: m.path,
		Raft:      raftstore.Config{Tick: 20 * time.Millisecond},
		Transport: c.net.Transport(m.addr, m.nodeID),
		Dial:      noDial, Logger: quietLogger(),
	})
	if err != nil {
		c.t.Fatal(err)
	}
	c.run(m, mgr, mode)
}

func (c *testCluster) run(m *testMember, mgr *Manager, mode raftstore.StartMode) {
	ctx, cancel := context.WithCancel(context.Background())
	m.m, m.cancel, m.done = mgr, cancel, make(chan error, 1)
	go func() { m.done <- mgr.Run(ctx, mode) }()
}

// join adds m to raft through the leader, as `swarm join --token <manager>`
// does, and records its Node object.
func (c *testCluster) join(m *testMember, hostname string) {
	c.t.Helper()
	l := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := l.m.Raft().AddMember(ctx, m.nodeID, m.addr)
	if err != nil {
		c.t.Fatalf("add member: %v", err)
	}
	mgr, err := New(Config{
		NodeID: m.nodeID, ClusterID: c.clusterID, Addr: m.addr, RaftPath: m.path,
		Raft:      raftstore.Config{Tick: 20 * time.Millisecond},
		Transport: c.net.Transport(m.addr, m.nodeID),
		Dial:      noDial, Logger: quietLogger(),
	})
	if err != nil {
		c.t.Fatal(err)
	}
	if err := mgr.Storage().SetRaftID(id); err != nil {
		c.t.Fatal(err)
	}
	mgr.Raft().SeedMembers(l.m.Raft().RaftMembers())
	c.run(m, mgr, raftstore.JoinExisting)
	err = l.m.Store().Update(ctx, func(tx *raftstore.Tx) error {
		return tx.Create(simulatedNode(m.nodeID, hostname, api.NodeRole_MANAGER))
	})
	if err != nil {
		c.t.Fatal(err)
	}
}

// stop stops a member and waits for it; it reports a manager that had
// already stopped on its own (a crash of its raft member).
func (c *testCluster) stop(m *testMember) {
	if m.cancel == nil {
		return
	}
	select {
	case err := <-m.done:
		c.t.Errorf("manager %s had stopped on its own: %v", m.addr, err)
		m.cancel()
		m.cancel = nil
		return
	default:
	}
	m.cancel()
	select {
	case err := <-m.done:
		if err != nil {
			c.t.Errorf("manager %s: %v", m.addr, err)
		}
	case <-time.After(30 * time.Second):
		c.t.Errorf("manager %s did not stop", m.addr)
	}
	m.cancel = nil
}

// alive fails the test when a manager stopped on its own.
func (c *testCluster) alive() {
	c.t.Helper()
	for _, m := range c.members {
		select {
		case err := <-m.done:
			m.cancel = nil
			c.t.Fatalf("manager %s stopped: %v", m.addr, err)
		default:
		}
	}
}

// leader waits for the member running the control loops.
func (c *testCluster) leader() *testMember {
	c.t.Helper()
	var found *testMember
	c.eventually(20*time.Second, "a leader", func() bool {
		for _, m := range c.members {
			if m.m != nil && m.cancel != nil && m.m.Leading() {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// eventually polls cond, ever less often, until d has passed, then fails; it
// also fails as soon as a manager stopped on its own.
func (c *testCluster) eventually(d time.Duration, what string, cond func() bool, describe ...func() string) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	pause := 10 * time.Millisecond
	for !cond() {
		c.alive()
		if time.Now().After(deadline) {
			state := ""
			for _, f := range describe {
				state += " " + f()
			}
			c.t.Fatalf("timed out after %v waiting for %s;%s", d, what, state)
		}
		time.Sleep(pause)
		pause = min(pause*3/2, 500*time.Millisecond) // long waits poll less
	}
}

// memDir is a temporary directory in memory (/dev/shm) where there is one:
// these tests exercise the control plane, not the disk, and thousands of
// fsyncs on a busy CI disk would only measure the disk.
func memDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/dev/shm", "shoal-manager-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
