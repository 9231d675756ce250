package raftstore

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	api "github.com/shoal-project/shoal/proto"
)

// stuckPeer is a Raft server that stops reading a stream once an append
// arrives on it (a peer too busy to take megabytes of entries), and
// reports the other messages it reads.
type stuckPeer struct {
	api.UnimplementedRaftServer
	got     chan raftpb.MessageType
	release chan struct{}
}

func (p *stuckPeer) ProcessRaftMessage(s grpc.ClientStreamingServer[api.RaftMessage, api.ProcessRaftMessageResponse]) error {
	for {
		in, err := s.Recv()
		if err == io.EOF {
			return s.SendAndClose(&api.ProcessRaftMessageResponse{})
		}
		if err != nil {
			return err
		}
		m, err := DecodeMessage(in.GetMessage())
		if err != nil {
			return err
		}
		if m.Type == raftpb.MsgApp {
			select { // stuck: nothing more is read from this stream
			case <-p.release:
			case <-s.Context().Done():
			}
			return s.Context().Err()
		}
		p.got <- m.Type
	}
}

type nopHandler struct{}

func (nopHandler) Step(context.Context, raftpb.Message) error { return nil }
func (nopHandler) ReportUnreachable(uint64)                   {}
func (nopHandler) ReportSnapshot(uint64, raft.SnapshotStatus) {}
func (nopHandler) Accept(uint64, string) bool                 { return true }

// A heartbeat reaches a peer that takes no more appends: appends have a
// stream of their own, so heartbeats and votes never queue behind
// megabytes of entries (a follower would lose its leader, and a leader its
// quorum).
func TestGRPCHeartbeatsDoNotQueueBehindAppends(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peer := &stuckPeer{got: make(chan raftpb.MessageType, 16), release: make(chan struct{})}
	srv := grpc.NewServer()
	api.RegisterRaftServer(srv, peer)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	defer close(peer.release)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tr := NewGRPCTransport(func(context.Context, string) (*grpc.ClientConn, error) { return conn, nil }, nil)
	tr.SetHandler(nopHandler{})
	defer tr.Close()
	tr.AddPeer(2, lis.Addr().String())

	// 32 appends of 1 MiB: far more than gRPC's flow-control windows let
	// through to a peer that does not read.
	big := make([]byte, 1<<20)
	var msgs []raftpb.Message
	for i := uint64(1); i <= 32; i++ {
		msgs = append(msgs, raftpb.Message{Type: raftpb.MsgApp, From: 1, To: 2, Term: 1, Index: i,
			Entries: []raftpb.Entry{{Term: 1, Index: i + 1, Data: big}}})
	}
	tr.Send(msgs)
	time.Sleep(200 * time.Millisecond) // the appends fill the stream
	tr.Send([]raftpb.Message{{Type: raftpb.MsgHeartbeat, From: 1, To: 2, Term: 1}})
	select {
	case typ := <-peer.got:
		if typ != raftpb.MsgHeartbeat {
			t.Fatalf("got %v, want the heartbeat", typ)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the heartbeat did not arrive within 5s: it waits behind appends the peer does not read")
	}
}
