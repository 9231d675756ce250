package manager

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

func TestNewClusterSpecFillsDefaults(t *testing.T) {
	spec, err := NewClusterSpec(nil)
	if err != nil {
		t.Fatal(err)
	}
	def := raftstore.DefaultConfig()
	switch {
	case spec.GetAnnotations().GetName() != "default":
		t.Errorf("name %q", spec.GetAnnotations().GetName())
	case spec.GetDispatcher().GetHeartbeatPeriod().AsDuration() != api.DefaultHeartbeatPeriod:
		t.Errorf("heartbeat %v", spec.GetDispatcher().GetHeartbeatPeriod().AsDuration())
	case spec.GetOrchestration().GetTaskHistoryRetentionLimit() != api.DefaultTaskHistory:
		t.Errorf("task history %d", spec.GetOrchestration().GetTaskHistoryRetentionLimit())
	case spec.GetCaConfig().GetNodeCertExpiry().AsDuration() != api.DefaultNodeCertExpiry:
		t.Errorf("cert expiry %v", spec.GetCaConfig().GetNodeCertExpiry().AsDuration())
	case spec.GetRaft().GetElectionTick() != uint32(def.ElectionTick) || spec.GetRaft().GetHeartbeatTick() != uint32(def.HeartbeatTick):
		t.Errorf("raft ticks %v", spec.GetRaft())
	case spec.GetRaft().GetSnapshotInterval() != def.SnapshotInterval:
		t.Errorf("snapshot interval %d", spec.GetRaft().GetSnapshotInterval())
	}
}

func TestNewClusterSpecKeepsWhatIsGivenAndCopies(t *testing.T) {
	given := &api.ClusterSpec{
		Annotations: &api.Annotations{Name: "prod"},
		CaConfig:    &api.CASettings{NodeCertExpiry: durationpb.New(48 * time.Hour)},
		Raft:        &api.RaftSettings{SnapshotInterval: 7, ElectionTick: 99},
	}
	spec, err := NewClusterSpec(given)
	if err != nil {
		t.Fatal(err)
	}
	if spec.GetAnnotations().GetName() != "prod" || spec.GetCaConfig().GetNodeCertExpiry().AsDuration() != 48*time.Hour ||
		spec.GetRaft().GetSnapshotInterval() != 7 {
		t.Fatalf("given settings lost: %v", spec)
	}
	// The ticks are those every manager runs with, whatever was asked.
	if spec.GetRaft().GetElectionTick() != uint32(raftstore.DefaultConfig().ElectionTick) {
		t.Fatalf("election tick %d", spec.GetRaft().GetElectionTick())
	}
	if given.Dispatcher != nil || given.GetRaft().GetElectionTick() != 99 {
		t.Fatal("NewClusterSpec changed the spec it was given")
	}
}

func TestNewClusterSpecRefusesAShortCertExpiry(t *testing.T) {
	_, err := NewClusterSpec(&api.ClusterSpec{CaConfig: &api.CASettings{NodeCertExpiry: durationpb.New(pki.MinNodeCertExpiry / 2)}})
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("err = %v, want InvalidArgument", err)
	}
}

func TestNewBootstrapMakesTheFirstManagerAndTokens(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	b, err := NewBootstrap(nil, clock)
	if err != nil {
		t.Fatal(err)
	}
	if b.ClusterID == "" || b.NodeID == "" || b.ClusterID == b.NodeID {
		t.Fatalf("IDs %q %q", b.ClusterID, b.NodeID)
	}
	id, err := b.CA.VerifyNodeCertPEM(b.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	if id.NodeID != b.NodeID || id.ClusterID != b.ClusterID || id.Role != api.NodeRole_MANAGER {
		t.Fatalf("certificate identity %v", id)
	}
	cert, _ := pki.ParseCertificatePEM(b.CertPEM)
	if got := cert.NotAfter.Sub(clock.Now()); got < api.DefaultNodeCertExpiry-time.Hour || got > api.DefaultNodeCertExpiry+time.Hour {
		t.Fatalf("certificate lives %v, want about %v from the clock's now", got, api.DefaultNodeCertExpiry)
	}
	if _, err := pki.NewKeyPair(b.CertPEM, b.KeyPEM); err != nil {
		t.Fatalf("key does not match the certificate: %v", err)
	}
	if b.WorkerToken == b.ManagerToken {
		t.Fatal("worker and manager tokens are the same")
	}
	for _, s := range []string{b.WorkerToken, b.ManagerToken} {
		tok, err := pki.ParseJoinToken(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pki.CheckRootCAForToken(b.CA.CertPEM(), tok); err != nil {
			t.Fatalf("token does not pin the root CA: %v", err)
		}
	}
	if b.UnlockKey != nil {
		t.Fatal("an unlock key without autolock")
	}
	locked, err := NewBootstrap(&api.ClusterSpec{Encryption: &api.EncryptionSettings{AutoLockManagers: true}}, clock)
	if err != nil {
		t.Fatal(err)
	}
	if len(locked.UnlockKey) != pki.UnlockKeySize {
		t.Fatalf("autolock unlock key has %d bytes", len(locked.UnlockKey))
	}
}

func TestBootstrapObjects(t *testing.T) {
	b, err := NewBootstrap(nil, clockwork.NewRealClock())
	if err != nil {
		t.Fatal(err)
	}
	desc := &api.NodeDescription{Hostname: "h1"}
	cluster, node, err := b.Objects(42, FirstManager{Addr: "10.0.0.1:4242", Description: desc, Availability: api.Availability_DRAIN})
	if err != nil {
		t.Fatal(err)
	}
	if cluster.GetId() != b.ClusterID || len(cluster.GetRootCa().GetCaKey()) == 0 ||
		cluster.GetRootCa().GetJoinTokens().GetWorker() != b.WorkerToken || cluster.GetRootCa().GetCaCertHash() != b.CA.Digest() {
		t.Fatalf("cluster %v", cluster)
	}
	ms := node.GetManagerStatus()
	if node.GetId() != b.NodeID || node.GetRole() != api.NodeRole_MANAGER || node.GetSpec().GetDesiredRole() != api.NodeRole_MANAGER ||
		node.GetSpec().GetAvailability() != api.Availability_DRAIN || node.GetStatus().GetAddr() != "10.0.0.1" ||
		ms.GetRaftId() != 42 || !ms.GetLeader() || ms.GetAddr() != "10.0.0.1:4242" || node.GetDescription() != desc {
		t.Fatalf("node %v", node)
	}
}

func bootLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func bootDial(context.Context, string) (*grpc.ClientConn, error) {
	return nil, errors.New("no network in this test")
}

func newBootManager(t *testing.T, b *Bootstrap, path string) *Manager {
	t.Helper()
	m, err := New(Config{NodeID: b.NodeID, ClusterID: b.ClusterID, Addr: "127.0.0.1:1", RaftPath: path,
		Raft: raftstore.Config{Tick: 10 * time.Millisecond}, Dial: bootDial, Logger: bootLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestManagerBootstrapWritesTheFirstObjectsOnce(t *testing.T) {
	b, err := NewBootstrap(nil, clockwork.NewRealClock())
	if err != nil {
		t.Fatal(err)
	}
	m := newBootManager(t, b, filepath.Join(t.TempDir(), "raft.db"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, raftstore.Bootstrap) }()
	defer func() {
		cancel()
		<-done
		if err := m.Close(); err != nil {
			t.Errorf("Close after Run: %v", err)
		}
	}()
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	self := FirstManager{Addr: "127.0.0.1:1", Description: &api.NodeDescription{Hostname: "h"}}
	if err := m.Bootstrap(wctx, b, self); err != nil {
		t.Fatal(err)
	}
	m.Store().View(func(tx raftstore.ReadTx) {
		if c := tx.Cluster(b.ClusterID); c == nil || c.GetSpec().GetAnnotations().GetName() != "default" {
			t.Errorf("cluster %v", c)
		}
		if n := tx.Node(b.NodeID); n == nil || n.GetManagerStatus().GetRaftId() != m.Raft().RaftID() || n.GetManagerStatus().GetRaftId() == 0 {
			t.Errorf("node %v, raft ID %x", n, m.Raft().RaftID())
		}
		// Docker's ingress network, made with the swarm.
		in := tx.NetworkByName("ingress")
		if in == nil || !in.GetSpec().GetIngress() || in.GetVni() != 4096 || in.GetIpam()[0].GetSubnet() != "10.0.0.0/24" ||
			in.GetIpam()[0].GetGateway() != "10.0.0.1" || in.GetSpec().GetDriver().GetName() != "overlay" {
			t.Errorf("ingress network %v", in)
		}
	})
	if err := m.Bootstrap(wctx, b, self); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("second Bootstrap: %v, want FailedPrecondition", err)
	}
	other, _ := NewBootstrap(nil, clockwork.NewRealClock())
	if err := m.Bootstrap(wctx, other, self); err == nil {
		t.Fatal("Bootstrap of another cluster accepted")
	}
}

func TestWaitLeadingEndsAtTheDeadline(t *testing.T) {
	b, _ := NewBootstrap(nil, clockwork.NewRealClock())
	m := newBootManager(t, b, filepath.Join(t.TempDir(), "raft.db"))
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := m.WaitLeading(ctx); !errors.Is(err, errdefs.ErrDeadlineExceeded) {
		t.Fatalf("WaitLeading of a manager never run: %v, want DeadlineExceeded", err)
	}
}

// A manager that never runs releases its raft log with Close: the file
// opens again at once (bbolt would otherwise wait for its lock).
func TestCloseReleasesTheRaftLogOfAManagerNeverRun(t *testing.T) {
	b, _ := NewBootstrap(nil, clockwork.NewRealClock())
	path := filepath.Join(t.TempDir(), "raft.db")
	m := newBootManager(t, b, path)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	again := newBootManager(t, b, path)
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
}
