package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
)

// Whole nodes in one process: real raft, mTLS and gRPC over loopback, a
// fake executor, no root, no containerd. Waits poll with a deadline.

const waitFor = 30 * time.Second

// testNode is one running Node with a CLI-like client on its control
// socket.
type testNode struct {
	t       *testing.T
	dir     string
	addr    string // cluster API listen address
	exec    *fakeExec
	n       *Node
	cancel  context.CancelFunc
	done    chan error
	conn    *grpc.ClientConn
	local   api.LocalNodeClient
	control api.ControlClient
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() && os.Getenv("NODE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startNode runs a node on dir (a data directory, possibly used before)
// listening on addr.
func startNode(t *testing.T, dir, addr string, exec *fakeExec) *testNode {
	t.Helper()
	return startNodeWith(t, dir, addr, exec, nil)
}

// startNodeWith is startNode with a change to the node's config.
func startNodeWith(t *testing.T, dir, addr string, exec *fakeExec, change func(*Config)) *testNode {
	t.Helper()
	cfg := Config{
		DataDir:         dir,
		ListenAddr:      addr,
		ControlSocket:   filepath.Join(dir, "ctl.sock"),
		Executor:        exec.open,
		RaftTick:        20 * time.Millisecond,
		HeartbeatPeriod: 500 * time.Millisecond,
		Version:         "shoald test",
		Logger:          testLogger(t),
	}
	if change != nil {
		change(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{t: t, dir: dir, addr: addr, exec: exec, n: n, cancel: cancel, done: make(chan error, 1)}
	go func() { tn.done <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case err := <-tn.done:
		t.Fatalf("node on %s stopped at start: %v", dir, err)
	case <-time.After(waitFor):
		t.Fatalf("node on %s not ready after %v", dir, waitFor)
	}
	tn.conn, err = grpc.NewClient("unix://"+cfg.ControlSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	tn.local, tn.control = api.NewLocalNodeClient(tn.conn), api.NewControlClient(tn.conn)
	t.Cleanup(tn.stop)
	return tn
}

// stop stops the node and waits for Run to return (idempotent).
func (tn *testNode) stop() {
	tn.t.Helper()
	if tn.cancel == nil {
		return
	}
	tn.cancel()
	tn.cancel = nil
	tn.conn.Close()
	select {
	case err := <-tn.done:
		if err != nil {
			tn.t.Errorf("Run: %v", err)
		}
	case <-time.After(waitFor):
		tn.t.Fatalf("node on %s did not stop within %v", tn.dir, waitFor)
	}
}

func (tn *testNode) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	tn.t.Cleanup(cancel)
	return ctx
}

func (tn *testNode) info() *api.InfoResponse {
	tn.t.Helper()
	out, err := tn.local.Info(tn.ctx(), &api.InfoRequest{})
	if err != nil {
		tn.t.Fatalf("Info: %v", err)
	}
	return out
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after %v", what, err, waitFor)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}

func initSwarm(t *testing.T, tn *testNode) *api.InitResponse {
	t.Helper()
	resp, err := tn.local.Init(tn.ctx(), &api.InitRequest{ListenAddr: tn.addr, AdvertiseAddr: tn.addr})
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	return resp
}

// managerToken reads the manager join token through the control socket.
func managerToken(t *testing.T, tn *testNode) string {
	t.Helper()
	cs, err := tn.control.ListClusters(tn.ctx(), &api.ListClustersRequest{})
	if err != nil || len(cs.GetClusters()) != 1 {
		t.Fatalf("ListClusters: %v (%d clusters)", err, len(cs.GetClusters()))
	}
	return cs.GetClusters()[0].GetRootCa().GetJoinTokens().GetManager()
}

// setRole asks the managers (through tn) to give node id another role.
func setRole(t *testing.T, tn *testNode, id string, role api.NodeRole) {
	t.Helper()
	eventually(t, "update node role", func() error {
		got, err := tn.control.GetNode(tn.ctx(), &api.GetNodeRequest{NodeId: id})
		if err != nil {
			return err
		}
		spec := got.GetNode().GetSpec()
		spec.DesiredRole = role
		_, err = tn.control.UpdateNode(tn.ctx(), &api.UpdateNodeRequest{NodeId: id, NodeVersion: got.GetNode().GetMeta().GetVersion(), Spec: spec})
		return err
	})
}

func isManager(tn *testNode, managers uint32) func() error {
	return func() error {
		in, err := tn.local.Info(tn.ctx(), &api.InfoRequest{})
		switch {
		case err != nil:
			return err
		case !in.GetControlAvailable():
			return errors.New("not a manager yet")
		case in.GetManagerCount() != managers:
			return fmt.Errorf("%d managers, want %d", in.GetManagerCount(), managers)
		case in.GetLeaderAddr() == "":
			return errors.New("no leader known")
		}
		return nil
	}
}

func TestInitOneNodeSwarm(t *testing.T) {
	n1 := startNode(t, t.TempDir(), freeAddr(t), newFakeExec())
	if got := n1.info().GetState(); got != api.InfoResponse_INACTIVE {
		t.Fatalf("state before init = %v, want INACTIVE", got)
	}
	if _, err := n1.control.ListNodes(n1.ctx(), &api.ListNodesRequest{}); !strings.Contains(fmt.Sprint(err), "not part of a swarm") {
		t.Fatalf("ListNodes outside a swarm: %v, want 'not part of a swarm'", err)
	}
	resp := initSwarm(t, n1)
	if resp.GetNodeId() == "" || resp.GetClusterId() == "" || resp.GetWorkerToken() == "" {
		t.Fatalf("Init response lacks identities or token: %v", resp)
	}
	in := n1.info()
	if in.GetState() != api.InfoResponse_ACTIVE || !in.GetControlAvailable() || in.GetManagerCount() != 1 || in.GetNodes() != 1 {
		t.Fatalf("after init: %v", in)
	}
	if in.GetNodeId() != resp.GetNodeId() || in.GetLeaderAddr() != n1.addr {
		t.Fatalf("info node %s leader %s, want %s at %s", in.GetNodeId(), in.GetLeaderAddr(), resp.GetNodeId(), n1.addr)
	}
	nodes, err := n1.control.ListNodes(n1.ctx(), &api.ListNodesRequest{})
	if err != nil || len(nodes.GetNodes()) != 1 {
		t.Fatalf("ListNodes: %v, %d nodes", err, len(nodes.GetNodes()))
	}
	if nd := nodes.GetNodes()[0]; nd.GetRole() != api.NodeRole_MANAGER || !nd.GetManagerStatus().GetLeader() {
		t.Fatalf("the first node is not the leading manager: %v", nd)
	}
	eventually(t, "the agent opens its executor", func() error {
		if got := n1.exec.openedFor(); len(got) == 0 || got[0] != resp.GetNodeId() {
			return fmt.Errorf("executor opened for %v", got)
		}
		return nil
	})
	if _, err := n1.local.Init(n1.ctx(), &api.InitRequest{ListenAddr: n1.addr}); !errdefs.IsFailedPrecondition(errdefs.FromGRPC(err)) {
		t.Fatalf("second Init: %v, want FailedPrecondition", err)
	}
}

func TestFailedInitLeavesTheNodeAsItWas(t *testing.T) {
	n1 := startNode(t, t.TempDir(), freeAddr(t), newFakeExec())
	// The port is taken: the manager cannot listen.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, err = n1.local.Init(n1.ctx(), &api.InitRequest{ListenAddr: busy.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "listen on") {
		t.Fatalf("Init on a busy port: %v, want a listen error", err)
	}
	if got := n1.info().GetState(); got != api.InfoResponse_INACTIVE {
		t.Fatalf("state after a failed init = %v, want INACTIVE", got)
	}
	if _, err := os.Stat(filepath.Join(n1.dir, "certificates")); !os.IsNotExist(err) {
		t.Fatalf("certificates left after a failed init: %v", err)
	}
	initSwarm(t, n1) // and the node can init afterwards
}

func TestRestartResumesFromTheDataDir(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	n1 := startNode(t, dir, addr, newFakeExec())
	resp := initSwarm(t, n1)
	n1.stop()

	again := startNode(t, dir, addr, newFakeExec())
	eventually(t, "the restarted manager leads", isManager(again, 1))
	in := again.info()
	if in.GetNodeId() != resp.GetNodeId() || in.GetClusterId() != resp.GetClusterId() || in.GetLeaderAddr() != addr {
		t.Fatalf("after restart: node %s cluster %s leader %s, want %s %s %s",
			in.GetNodeId(), in.GetClusterId(), in.GetLeaderAddr(), resp.GetNodeId(), resp.GetClusterId(), addr)
	}
	eventually(t, "the node list after restart", func() error {
		nodes, err := again.control.ListNodes(again.ctx(), &api.ListNodesRequest{})
		if err != nil {
			return err
		}
		if len(nodes.GetNodes()) != 1 || nodes.GetNodes()[0].GetId() != resp.GetNodeId() {
			return fmt.Errorf("nodes %v", nodes.GetNodes())
		}
		return nil
	})
}

func TestJoinPromoteDemoteLeave(t *testing.T) {
	n1 := startNode(t, t.TempDir(), freeAddr(t), newFakeExec())
	init := initSwarm(t, n1)
	n2 := startNode(t, t.TempDir(), freeAddr(t), newFakeExec())

	// Join as a worker.
	joined, err := n2.local.Join(n2.ctx(), &api.JoinRequest{RemoteAddr: n1.addr, JoinToken: init.GetWorkerToken(),
		ListenAddr: n2.addr, AdvertiseAddr: n2.addr})
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	if joined.GetRole() != api.NodeRole_WORKER {
		t.Fatalf("joined as %v, want WORKER", joined.GetRole())
	}
	if in := n2.info(); in.GetState() != api.InfoResponse_ACTIVE || in.GetControlAvailable() {
		t.Fatalf("worker info: %v", in)
	}
	if _, err := n2.control.ListNodes(n2.ctx(), &api.ListNodesRequest{}); err == nil {
		t.Fatal("a worker served the Control API")
	}
	eventually(t, "the worker is ready", func() error {
		got, err := n1.control.GetNode(n1.ctx(), &api.GetNodeRequest{NodeId: joined.GetNodeId()})
		if err != nil {
			return err
		}
		if st := got.GetNode().GetStatus().GetState(); st != api.NodeStatus_READY {
			return fmt.Errorf("state %v", st)
		}
		return nil
	})

	// Promote: the agent learns the new desired role from its session and
	// the node restarts its member as a manager, which joins raft.
	setRole(t, n1, joined.GetNodeId(), api.NodeRole_MANAGER)
	eventually(t, "the promoted node is a manager", isManager(n2, 2))
	eventually(t, "the first manager sees two", isManager(n1, 2))

	// A manager may not leave without --force; with two reachable
	// managers the refusal recommends demoting first.
	_, err = n2.local.Leave(n2.ctx(), &api.LeaveRequest{})
	if err == nil || !strings.Contains(err.Error(), "demote it first") || strings.Contains(err.Error(), "Raft quorum") {
		t.Fatalf("manager Leave without force: %v", err)
	}

	// Demote: back to a worker, out of raft, raft log dropped.
	setRole(t, n1, joined.GetNodeId(), api.NodeRole_WORKER)
	eventually(t, "the demoted node is a worker", func() error {
		if in := n2.info(); in.GetControlAvailable() || in.GetState() != api.InfoResponse_ACTIVE {
			return fmt.Errorf("info %v", in)
		}
		if _, err := os.Stat(filepath.Join(n2.dir, "raft")); !os.IsNotExist(err) {
			return fmt.Errorf("raft log still there (%v)", err)
		}
		return nil
	})
	eventually(t, "the first manager is alone again", isManager(n1, 1))

	// The last manager may not leave without --force.
	_, err = n1.local.Leave(n1.ctx(), &api.LeaveRequest{})
	if err == nil || !strings.Contains(err.Error(), "last manager") {
		t.Fatalf("last manager's Leave without force: %v", err)
	}

	// A worker leaves: it stops, its containers go, its state is wiped.
	if _, err := n2.local.Leave(n2.ctx(), &api.LeaveRequest{}); err != nil {
		t.Fatalf("worker Leave: %v", err)
	}
	if in := n2.info(); in.GetState() != api.InfoResponse_INACTIVE {
		t.Fatalf("state after leave = %v", in.GetState())
	}
	for _, p := range []string{"certificates", "state.json", "worker", "raft"} {
		if _, err := os.Stat(filepath.Join(n2.dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s left after leave (%v)", p, err)
		}
	}
	eventually(t, "the managers see the worker down", func() error {
		got, err := n1.control.GetNode(n1.ctx(), &api.GetNodeRequest{NodeId: joined.GetNodeId()})
		if err != nil {
			return err
		}
		if st := got.GetNode().GetStatus().GetState(); st != api.NodeStatus_DOWN {
			return fmt.Errorf("state %v", st)
		}
		return nil
	})
}

func TestJoinAsManagerAndLeaveWithForce(t *testing.T) {
	n1 := startNode(t, t.TempDir(), freeAddr(t), newFakeExec())
	initSwarm(t, n1)
	n2 := startNode(t, t.TempDir(), freeAddr(t), newFakeExec())
	joined, err := n2.local.Join(n2.ctx(), &api.JoinRequest{RemoteAddr: n1.addr, JoinToken: managerToken(t, n1),
		ListenAddr: n2.addr, AdvertiseAddr: n2.addr})
	if err != nil {
		t.Fatalf("Join as manager: %v", err)
	}
	if joined.GetRole() != api.NodeRole_MANAGER {
		t.Fatalf("joined as %v, want MANAGER", joined.GetRole())
	}
	eventually(t, "the new manager is in raft", isManager(n2, 2))
	eventually(t, "the first manager sees two", isManager(n1, 2))

	// --force: it leaves raft first, so the first manager keeps a quorum
	// of one.
	if _, err := n2.local.Leave(n2.ctx(), &api.LeaveRequest{Force: true}); err != nil {
		t.Fatalf("Leave --force: %v", err)
	}
	eventually(t, "the first manager is alone and leads", isManager(n1, 1))
	if _, err := n1.control.ListNodes(n1.ctx(), &api.ListNodesRequest{}); err != nil {
		t.Fatalf("the remaining manager lost its quorum: %v", err)
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	var c Config
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), "Executor is required") {
		t.Fatalf("validate without an executor: %v", err)
	}
	def := DefaultConfig()
	if c.DataDir != def.DataDir || c.ListenAddr != def.ListenAddr || c.ControlSocket != def.ControlSocket ||
		c.ExecutorRetry != def.ExecutorRetry || c.Clock == nil || c.Logger == nil || c.Listen == nil {
		t.Fatalf("zero fields not defaulted: %+v", c)
	}
	c = Config{Executor: newFakeExec().open, ListenAddr: "nope"}
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), "--listen-addr") {
		t.Fatalf("bad listen address: %v", err)
	}
	c = Config{Executor: newFakeExec().open, RaftTick: -1}
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), "RaftTick") {
		t.Fatalf("negative tick: %v", err)
	}
}

// joinManager joins tn to the swarm of first as a manager and waits until
// it is in raft with want managers.
func joinManager(t *testing.T, first, tn *testNode, token string, want uint32) {
	t.Helper()
	if _, err := tn.local.Join(tn.ctx(), &api.JoinRequest{RemoteAddr: first.addr, JoinToken: token,
		ListenAddr: tn.addr, AdvertiseAddr: tn.addr}); err != nil {
		t.Fatalf("Join as manager: %v", err)
	}
	eventually(t, "the new manager is in raft", isManager(tn, want))
}

// With three managers and one of them down, the leader leaving would leave
// one reachable manager of two: the refusal says the swarm would lose its
// quorum. (Reachability is the leader's view: a follower hears only from
// the leader and counts the other followers as unreachable.)
func TestManagerLeaveRefusedWhenItWouldLoseQuorum(t *testing.T) {
	n1 := startNode(t, t.TempDir(), freeAddr(t), newFakeExec())
	initSwarm(t, n1)
	tok := managerToken(t, n1)
	n2 := startNode(t, t.TempDir(), freeAddr(t), newFakeExec())
	joinManager(t, n1, n2, tok, 2)
	n3 := startNode(t, t.TempDir(), freeAddr(t), newFakeExec())
	joinManager(t, n1, n3, tok, 3)

	refusal := func(quorumLost bool) func() error {
		return func() error {
			_, err := n1.local.Leave(n1.ctx(), &api.LeaveRequest{})
			if err == nil {
				t.Fatal("a manager left without --force")
			}
			if lost := strings.Contains(err.Error(), "leaves 1 managers out of 3. Without a Raft quorum"); lost != quorumLost {
				return err
			}
			if !strings.Contains(err.Error(), "demote it first") {
				t.Fatalf("refusal %v lacks the advice", err)
			}
			return nil
		}
	}
	eventually(t, "the leader's refusal with every manager up", refusal(false))
	n3.stop()
	eventually(t, "the refusal names the quorum loss", refusal(true))
	if in := n1.info(); !in.GetControlAvailable() || in.GetState() != api.InfoResponse_ACTIVE || in.GetManagerCount() != 3 {
		t.Fatalf("the refused manager changed: %v", in)
	}
}

func TestFailedJoinLeavesTheNodeAsItWas(t *testing.T) {
	n1 := startNode(t, t.TempDir(), freeAddr(t), newFakeExec())
	init := initSwarm(t, n1)
	n2 := startNode(t, t.TempDir(), freeAddr(t), newFakeExec())
	// A token of another swarm: its digest does not match n1's root CA, so
	// the secret is never sent.
	other := startNode(t, t.TempDir(), freeAddr(t), newFakeExec())
	otherTok := initSwarm(t, other).GetWorkerToken()
	_, err := n2.local.Join(n2.ctx(), &api.JoinRequest{RemoteAddr: n1.addr, JoinToken: otherTok, ListenAddr: n2.addr, AdvertiseAddr: n2.addr})
	if err == nil {
		t.Fatal("joined with another swarm's token")
	}
	if in := n2.info(); in.GetState() != api.InfoResponse_INACTIVE {
		t.Fatalf("state after a failed join = %v", in.GetState())
	}
	if _, err := os.Stat(filepath.Join(n2.dir, "certificates")); !os.IsNotExist(err) {
		t.Fatalf("certificates left after a failed join: %v", err)
	}
	if _, err := n2.local.Join(n2.ctx(), &api.JoinRequest{RemoteAddr: n1.addr, JoinToken: init.GetWorkerToken(),
		ListenAddr: n2.addr, AdvertiseAddr: n2.addr}); err != nil {
		t.Fatalf("Join after a failed one: %v", err)
	}
}

func (f *fakeExec) running() (tasks, removed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.tasks), len(f.removed)
}

// Tasks reach the injected executor, and leaving removes what it runs.
func TestTasksRunOnTheInjectedExecutorAndLeaveRemovesThem(t *testing.T) {
	n1 := startNode(t, t.TempDir(), freeAddr(t), newFakeExec())
	initSwarm(t, n1)
	resp, err := n1.control.CreateService(n1.ctx(), &api.CreateServiceRequest{Spec: &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "web"},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "example/web:1"}},
		Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 2}},
	}})
	if err != nil {
		t.Fatalf("CreateService: %v", err)
	}
	eventually(t, "two tasks running", func() error {
		tasks, err := n1.control.ListTasks(n1.ctx(), &api.ListTasksRequest{Filters: &api.ListFilters{ServiceIds: []string{resp.GetService().GetId()}}})
		if err != nil {
			return err
		}
		running := 0
		for _, tk := range tasks.GetTasks() {
			if tk.GetStatus().GetState() == api.TaskState_RUNNING {
				running++
			}
		}
		if n, _ := n1.exec.running(); running != 2 || n != 2 {
			return fmt.Errorf("%d tasks running, %d containers", running, n)
		}
		return nil
	})
	if _, err := n1.local.Leave(n1.ctx(), &api.LeaveRequest{Force: true}); err != nil {
		t.Fatalf("Leave --force: %v", err)
	}
	if n, removed := n1.exec.running(); n != 0 || removed < 2 {
		t.Fatalf("after leave: %d containers left, %d removed", n, removed)
	}
	if in := n1.info(); in.GetState() != api.InfoResponse_INACTIVE {
		t.Fatalf("state after leave = %v", in.GetState())
	}
}

// With autolock, a restarted manager is locked until Unlock gets the right
// key: it serves Info and Unlock only; a wrong key changes nothing.
func TestAutolockedManagerRestartsLockedUntilUnlocked(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	n1 := startNode(t, dir, addr, newFakeExec())
	resp, err := n1.local.Init(n1.ctx(), &api.InitRequest{ListenAddr: addr, AdvertiseAddr: addr,
		Spec: &api.ClusterSpec{Encryption: &api.EncryptionSettings{AutoLockManagers: true}}})
	if err != nil {
		t.Fatalf("Init with autolock: %v", err)
	}
	if !strings.HasPrefix(resp.GetUnlockKey(), "SHKEY-1-") {
		t.Fatalf("unlock key %q", resp.GetUnlockKey())
	}
	n1.stop()

	again := startNode(t, dir, addr, newFakeExec())
	in := again.info()
	if in.GetState() != api.InfoResponse_LOCKED || in.GetNodeId() != resp.GetNodeId() || in.GetUnlockKeyFingerprint() == "" {
		t.Fatalf("restarted autolocked manager: %v", in)
	}
	if _, err := again.control.ListNodes(again.ctx(), &api.ListNodesRequest{}); err == nil || !strings.Contains(err.Error(), "needs to be unlocked") {
		t.Fatalf("ListNodes on a locked manager: %v", err)
	}
	if got := again.exec.openedFor(); len(got) != 0 {
		t.Fatalf("a locked node opened its executor for %v", got)
	}
	raw, err := pki.GenerateUnlockKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.local.Unlock(again.ctx(), &api.UnlockRequest{UnlockKey: pki.FormatUnlockKey(raw)}); err == nil {
		t.Fatal("a wrong unlock key was accepted")
	}
	if in := again.info(); in.GetState() != api.InfoResponse_LOCKED {
		t.Fatalf("state after a wrong key = %v", in.GetState())
	}
	if _, err := again.local.Unlock(again.ctx(), &api.UnlockRequest{UnlockKey: resp.GetUnlockKey()}); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	eventually(t, "the unlocked manager leads", isManager(again, 1))
	if _, err := again.local.Unlock(again.ctx(), &api.UnlockRequest{UnlockKey: resp.GetUnlockKey()}); err == nil || !strings.Contains(err.Error(), "swarm is not locked") {
		t.Fatalf("second Unlock: %v", err)
	}
}

// `node rm` of a worker: its certificate is refused everywhere, so it
// leaves by itself: stops, removes its containers, forgets the swarm.
func TestRemovedWorkerLeavesByItself(t *testing.T) {
	n1 := startNode(t, t.TempDir(), freeAddr(t), newFakeExec())
	init := initSwarm(t, n1)
	n2 := startNode(t, t.TempDir(), freeAddr(t), newFakeExec())
	joined, err := n2.local.Join(n2.ctx(), &api.JoinRequest{RemoteAddr: n1.addr, JoinToken: init.GetWorkerToken(),
		ListenAddr: n2.addr, AdvertiseAddr: n2.addr})
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	eventually(t, "the worker is known", func() error {
		_, err := n1.control.GetNode(n1.ctx(), &api.GetNodeRequest{NodeId: joined.GetNodeId()})
		return err
	})
	if _, err := n1.control.RemoveNode(n1.ctx(), &api.RemoveNodeRequest{NodeId: joined.GetNodeId(), Force: true}); err != nil {
		t.Fatalf("RemoveNode: %v", err)
	}
	eventually(t, "the removed worker left", func() error {
		if in := n2.info(); in.GetState() != api.InfoResponse_INACTIVE {
			return fmt.Errorf("state %v", in.GetState())
		}
		if _, err := os.Stat(filepath.Join(n2.dir, "certificates")); !os.IsNotExist(err) {
			return fmt.Errorf("certificates still there (%v)", err)
		}
		return nil
	})
}

// A manager whose raft log is gone refuses to start rather than rejoin
// empty under its old identity; Run fails and names the file.
func TestManagerWithoutItsRaftLogRefusesToStart(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	n1 := startNode(t, dir, addr, newFakeExec())
	initSwarm(t, n1)
	n1.stop()
	if err := os.Remove(filepath.Join(dir, "raft", "raft.db")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	err := Run(ctx, Config{DataDir: dir, ListenAddr: addr, ControlSocket: filepath.Join(dir, "ctl.sock"),
		Executor: newFakeExec().open, Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "raft.db is empty") {
		t.Fatalf("Run without the raft log: %v", err)
	}
}

// A second daemon given a control socket that a live one serves fails at
// start, naming the socket, and the first keeps answering on it.
func TestControlSocketInUseRefused(t *testing.T) {
	dir := t.TempDir()
	n1 := startNode(t, dir, freeAddr(t), newFakeExec())
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	other := t.TempDir()
	err := Run(ctx, Config{DataDir: other, ListenAddr: freeAddr(t), ControlSocket: filepath.Join(dir, "ctl.sock"),
		Executor: newFakeExec().open, Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "ctl.sock is in use") || !strings.Contains(err.Error(), "--control-socket") {
		t.Fatalf("Run on a live control socket: %v", err)
	}
	if _, err := n1.local.Info(ctx, &api.InfoRequest{}); err != nil {
		t.Fatalf("the first daemon lost its control socket: %v", err)
	}
}

// `swarm leave` typed while the node restarts its member in a new role (a
// demotion just arrived) waits for the role change to end instead of
// refusing; after a bounded wait it refuses with the reason.
func TestLeaveWaitsForARoleChange(t *testing.T) {
	tn := startNode(t, t.TempDir(), freeAddr(t), newFakeExec())
	initSwarm(t, tn)
	if err := tn.n.reserve("", func() error { return nil }); err != nil {
		t.Fatal(err) // stands for changeRole holding the node
	}
	released := make(chan time.Time, 1)
	go func() {
		time.Sleep(300 * time.Millisecond) // the role change's work, not a wait for an outcome
		released <- time.Now()
		tn.n.release()
	}()
	if _, err := tn.local.Leave(tn.ctx(), &api.LeaveRequest{Force: true}); err != nil {
		t.Fatalf("Leave during a role change: %v", err)
	}
	select {
	case <-released:
	default:
		t.Fatal("Leave ran while the role change still held the node")
	}
	if in := tn.info(); in.GetState() != api.InfoResponse_INACTIVE {
		t.Fatalf("state after leave = %v", in.GetState())
	}
}
