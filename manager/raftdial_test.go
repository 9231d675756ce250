package manager

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
)

// Raft's messages go over RaftDial's connections, never over Dial's, which
// carry the calls a follower forwards to the leader.
func TestRaftDialsItsOwnConnections(t *testing.T) {
	var raftDials atomic.Int32
	m, err := New(Config{NodeID: "n1", ClusterID: "c1", Addr: "127.0.0.1:1", RaftPath: filepath.Join(t.TempDir(), "raft.db"),
		Dial: func(_ context.Context, addr string) (*grpc.ClientConn, error) {
			t.Errorf("raft dialed %s through Dial", addr)
			return nil, errors.New("not this dialer")
		},
		RaftDial: func(context.Context, string) (*grpc.ClientConn, error) {
			raftDials.Add(1)
			return nil, errors.New("no manager there")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	defer m.transport.Close()
	m.transport.AddPeer(2, "127.0.0.1:2")
	m.transport.Send([]raftpb.Message{{Type: raftpb.MsgHeartbeat, From: 1, To: 2}})
	deadline := time.Now().Add(10 * time.Second)
	for raftDials.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("raft's transport did not dial through RaftDial within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
