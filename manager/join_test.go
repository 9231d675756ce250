package manager

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// fakeRaftLeader answers Join as a leader would, or with err.
type fakeRaftLeader struct {
	api.UnimplementedRaftServer
	resp *api.JoinRaftResponse
	err  error
	got  chan *api.JoinRaftRequest
}

func (f *fakeRaftLeader) Join(_ context.Context, req *api.JoinRaftRequest) (*api.JoinRaftResponse, error) {
	f.got <- req
	return f.resp, f.err
}

// serveFakeLeader serves f on loopback and returns a manager (never run)
// whose Dial reaches it, and its address.
func serveFakeLeader(t *testing.T, f *fakeRaftLeader) (*Manager, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	api.RegisterRaftServer(s, f)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	var conns []*grpc.ClientConn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	dial := func(_ context.Context, addr string) (*grpc.ClientConn, error) {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err == nil {
			conns = append(conns, c)
		}
		return c, err
	}
	b, _ := NewBootstrap(nil, clockwork.NewRealClock())
	m, err := New(Config{NodeID: b.NodeID, ClusterID: b.ClusterID, Addr: "127.0.0.1:7777",
		RaftPath: filepath.Join(t.TempDir(), "raft.db"), Dial: dial, Logger: bootLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, lis.Addr().String()
}

func joinCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestJoinRaftRecordsTheRaftIDAndSeedsMembers(t *testing.T) {
	leader := &api.RaftMember{RaftId: 0x11, NodeId: "leader", Addr: "10.0.0.1:4242"}
	f := &fakeRaftLeader{got: make(chan *api.JoinRaftRequest, 1), resp: &api.JoinRaftResponse{
		RaftId:  0x22,
		Members: []*api.RaftMember{leader, {RaftId: 0x22, NodeId: "me", Addr: "127.0.0.1:7777"}},
	}}
	m, addr := serveFakeLeader(t, f)
	if err := m.JoinRaft(joinCtx(t), addr); err != nil {
		t.Fatal(err)
	}
	if req := <-f.got; req.GetAddr() != "127.0.0.1:7777" {
		t.Fatalf("the leader was told address %q, want the manager's own", req.GetAddr())
	}
	if got := m.Storage().RaftID(); got != 0x22 {
		t.Fatalf("raft ID recorded %x, want 22", got)
	}
	if got := m.Raft().Member(0x11); got == nil || got.GetAddr() != leader.Addr {
		t.Fatalf("the leader is not seeded: %v", got)
	}
	if got := len(m.Raft().RaftMembers()); got != 2 {
		t.Fatalf("%d members seeded, want 2", got)
	}
}

func TestJoinRaftFailsWithoutChangingAnything(t *testing.T) {
	for name, f := range map[string]*fakeRaftLeader{
		"refused":    {err: status.Error(codes.FailedPrecondition, "adding it would lose the quorum")},
		"no raft ID": {resp: &api.JoinRaftResponse{}},
	} {
		t.Run(name, func(t *testing.T) {
			f.got = make(chan *api.JoinRaftRequest, 1)
			m, addr := serveFakeLeader(t, f)
			err := m.JoinRaft(joinCtx(t), addr)
			if err == nil {
				t.Fatal("JoinRaft succeeded")
			}
			if f.err != nil && (!errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), addr)) {
				t.Fatalf("err = %v, want the leader's FailedPrecondition naming %s", err, addr)
			}
			if got := m.Storage().RaftID(); got != 0 {
				t.Fatalf("raft ID %x recorded by a failed join", got)
			}
		})
	}
}

func TestJoinRaftNeedsAManagerToAsk(t *testing.T) {
	m, _ := serveFakeLeader(t, &fakeRaftLeader{})
	if err := m.JoinRaft(joinCtx(t), ""); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("JoinRaft via nobody: %v", err)
	}
}

var _ raftstore.Dialer = bootDial

func TestCheckRestartRefusesAnEmptyLog(t *testing.T) {
	m, _ := serveFakeLeader(t, &fakeRaftLeader{})
	err := m.CheckRestart()
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "raft.db is empty") || !strings.Contains(err.Error(), "swarm leave --force") {
		t.Fatalf("CheckRestart of an empty log: %v", err)
	}
}
