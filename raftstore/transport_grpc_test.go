package raftstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
)

// grpcCluster runs members over real gRPC on loopback. Without TLS in this
// test, a member names itself in call metadata; production uses the peer's
// certificate (pki), which this package does not need to know about.
type grpcCluster struct {
	t       testing.TB
	members []*grpcMember
	conns   sync.Map // addr -> *grpc.ClientConn
	tweak   func(*Config)
}

type grpcMember struct {
	nodeID  string
	addr    string
	path    string
	lis     net.Listener
	srv     *grpc.Server
	storage *DiskStorage
	store   *Store
	node    *Node
	cancel  context.CancelFunc
	done    chan error
}

func identifyByMetadata(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("x-node-id"); len(v) == 1 {
		return v[0], nil
	}
	return "", errors.New("caller did not identify itself")
}

func newGRPCCluster(t testing.TB, size int, tweak func(*Config)) *grpcCluster {
	t.Helper()
	c := &grpcCluster{t: t, tweak: tweak}
	dir := t.TempDir()
	for i := 0; i < size; i++ {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c.members = append(c.members, &grpcMember{
			nodeID: fmt.Sprintf("node%d", i), addr: lis.Addr().String(), lis: lis,
			path: filepath.Join(dir, fmt.Sprintf("m%d", i), "raft.db"),
		})
	}
	t.Cleanup(func() {
		for _, m := range c.members {
			c.stop(m)
		}
		c.conns.Range(func(_, v any) bool { v.(*grpc.ClientConn).Close(); return true })
	})
	c.start(c.members[0], Bootstrap, nil)
	waitFor(t, 10*time.Second, "bootstrap leader", c.members[0].node.IsLeader)
	for _, m := range c.members[1:] {
		l := c.leader()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		id, err := l.node.AddMember(ctx, m.nodeID, m.addr)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		st, err := OpenDiskStorage(m.path)
		if err != nil {
			t.Fatal(err)
		}
		_ = st.SetRaftID(id)
		_ = st.Close()
		c.start(m, JoinExisting, l.node.RaftMembers())
		waitFor(t, 10*time.Second, "new member to catch up", func() bool {
			return l.node.peerReachable(id) && m.node.AppliedIndex() >= l.node.AppliedIndex()
		})
	}
	return c
}

func (c *grpcCluster) dialer(self string) Dialer {
	return func(ctx context.Context, addr string) (*grpc.ClientConn, error) {
		key := self + "->" + addr
		if v, ok := c.conns.Load(key); ok {
			return v.(*grpc.ClientConn), nil
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
				return streamer(metadata.AppendToOutgoingContext(ctx, "x-node-id", self), desc, cc, method, opts...)
			}))
		if err != nil {
			return nil, err
		}
		if v, loaded := c.conns.LoadOrStore(key, conn); loaded {
			conn.Close()
			return v.(*grpc.ClientConn), nil
		}
		return conn, nil
	}
}

func (c *grpcCluster) start(m *grpcMember, mode StartMode, seed []*api.RaftMember) {
	c.t.Helper()
	st, err := OpenDiskStorage(m.path)
	if err != nil {
		c.t.Fatal(err)
	}
	m.storage = st
	m.store = NewStore(nil)
	tr := NewGRPCTransport(c.dialer(m.nodeID), nil)
	cfg := Config{NodeID: m.nodeID, Addr: m.addr, StoragePath: m.path, Logger: slog.New(slog.NewTextHandler(testLogOut(), &slog.HandlerOptions{Level: slog.LevelInfo})).With("m", m.nodeID),
		Tick: 20 * time.Millisecond}
	if c.tweak != nil {
		c.tweak(&cfg)
	}
	m.node, err = New(cfg, st, m.store, tr)
	if err != nil {
		c.t.Fatal(err)
	}
	if m.lis == nil {
		if m.lis, err = net.Listen("tcp", m.addr); err != nil {
			c.t.Fatal(err)
		}
	}
	m.srv = grpc.NewServer(grpc.MaxRecvMsgSize(4 << 20))
	api.RegisterRaftServer(m.srv, NewRaftService(m.node, tr, identifyByMetadata))
	go m.srv.Serve(m.lis)
	m.node.SeedMembers(seed)
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan error, 1)
	go func() { m.done <- m.node.Run(ctx, mode) }()
	<-m.node.Started()
	if mode == Bootstrap {
		_, _ = m.node.CampaignIfAlone(ctx) // as the manager does
	}
}

func (c *grpcCluster) stop(m *grpcMember) {
	if m.cancel == nil {
		return
	}
	m.srv.Stop()
	m.lis = nil
	m.cancel()
	<-m.done
	m.cancel = nil
	_ = m.storage.Close()
}

func (c *grpcCluster) leader() *grpcMember {
	var l *grpcMember
	waitFor(c.t, 10*time.Second, "a leader", func() bool {
		for _, m := range c.members {
			if m.cancel != nil && m.node.IsLeader() {
				l = m
				return true
			}
		}
		return false
	})
	return l
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, d, 10*time.Millisecond, cond, "%s", what)
}

func TestGRPCTransportReplicatesAndShipsSnapshots(t *testing.T) {
	c := newGRPCCluster(t, 3, func(cfg *Config) {
		cfg.SnapshotInterval = 100
		cfg.LogEntriesForSlowFollowers = 10
	})
	l := c.leader()
	var lagger *grpcMember
	for _, m := range c.members {
		if m != l {
			lagger = m
		}
	}
	c.stop(lagger)
	// Big objects so the snapshot spans several chunks.
	payload := randomText(20 << 10)
	for i := 0; i < 150; i++ {
		name := fmt.Sprintf("svc-%03d", i)
		for {
			err := l.store.Update(context.Background(), func(tx *Tx) error {
				s := svc("id-"+name, name)
				s.Spec.Task = &api.TaskSpec{Container: &api.ContainerSpec{Env: []string{payload}}}
				return tx.Create(s)
			})
			if errdefs.IsUnavailable(err) {
				// A loaded machine (the race detector, parallel packages) can
				// miss heartbeats: write to whoever leads now. A write that
				// was applied after all comes back as AlreadyExists.
				l = c.leader()
				continue
			}
			if err != nil && !errdefs.IsAlreadyExists(err) {
				t.Fatal(err)
			}
			break
		}
	}
	waitFor(t, 10*time.Second, "a snapshot on the leader", func() bool { return l.node.snapIndex.Load() >= 100 })
	c.start(lagger, Restart, nil)
	waitFor(t, 20*time.Second, "the lagging member to catch up", func() bool {
		return lagger.node.AppliedIndex() == l.node.AppliedIndex() && lagger.store.Hash() == l.store.Hash()
	})
	if snap, _ := lagger.storage.Snapshot(); snap.Metadata.Index < 100 || len(snap.Data) <= SnapshotChunkSize {
		t.Fatalf("lagging member did not receive a multi-chunk snapshot (index %d, %d bytes)", snap.Metadata.Index, len(snap.Data))
	}
}

func TestGRPCRefusesSenderThatDoesNotMatchItsIdentity(t *testing.T) {
	c := newGRPCCluster(t, 1, nil)
	m := c.members[0]
	forged := c.dialer("intruder")
	conn, err := forged(context.Background(), m.addr)
	if err != nil {
		t.Fatal(err)
	}
	// The intruder claims to be the member itself.
	s, err := api.NewRaftClient(conn).ProcessRaftMessage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	frame, _ := (&raftMsg{from: m.node.RaftID(), to: m.node.RaftID()}).marshal()
	_ = s.Send(&api.RaftMessage{Message: frame})
	_, err = s.CloseAndRecv()
	if err == nil {
		t.Fatal("a message whose sender does not match the caller was accepted")
	}
}

type raftMsg struct{ from, to uint64 }

func (r *raftMsg) marshal() ([]byte, error) {
	m := raftpbMessage(r.from, r.to)
	return m.Marshal()
}

func testLogOut() io.Writer {
	if os.Getenv("RAFT_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

// Followers exchange no raft messages, yet each must count the other as
// reachable: when the leader dies, a survivor that counts only itself
// says "quorum lost (1 of 3 managers reachable)" and fails the calls that
// should wait for the election. The transport's pings keep the followers
// heard. Here no election follows the leader's end (long election
// timeout, no early forgetting), so only pings can tell.
func TestFollowersHearEachOtherThroughPings(t *testing.T) {
	c := newGRPCCluster(t, 3, func(cfg *Config) { cfg.ElectionTick = 500 }) // 10 s
	l := c.leader()
	var followers []*grpcMember
	for _, m := range c.members {
		if m != l {
			m.node.noForgetTicks.Store(true)
			followers = append(followers, m)
		}
	}
	for _, f := range followers {
		waitFor(t, 3*reachableWindow, "follower "+f.nodeID+" to count all 3 managers reachable", func() bool {
			return f.node.QuorumStatus() == "3 of 3 managers reachable"
		})
	}
	heard := followers[0].node.transport.(*GRPCTransport).LastHeard(followers[1].node.raftID)
	c.stop(l)
	// The leader's absence shows once a send to it fails (the next heartbeat
	// answer or ping); the other follower stays reachable past the window.
	for _, f := range followers {
		waitFor(t, 3*reachableWindow, "follower "+f.nodeID+" to see the leader gone", func() bool {
			return f.node.QuorumStatus() == "2 of 3 managers reachable"
		})
	}
	time.Sleep(reachableWindow + pingInterval)
	for _, f := range followers {
		if got := f.node.QuorumStatus(); got != "2 of 3 managers reachable" {
			t.Errorf("follower %s after the leader's end: %q, want 2 of 3 reachable", f.nodeID, got)
		}
	}
	// Pings are no raft messages: the followers' raft said nothing to each
	// other, and LastHeard (the leader-silence rules') did not move.
	if got := followers[0].node.transport.(*GRPCTransport).LastHeard(followers[1].node.raftID); !got.Equal(heard) {
		t.Errorf("LastHeard moved from %v to %v without a raft message", heard, got)
	}
}
