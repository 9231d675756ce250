package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	api "github.com/shoal-project/shoal/proto"
)

// While a restarted node reopens its recorded membership, calls are told
// it is starting (Unavailable, so clients retry), `info` says pending, and
// an init or join is refused: the node is in a swarm, not outside one.
func TestCallsWhileResumingSayTheNodeIsStarting(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	first := startNode(t, dir, addr, newFakeExec())
	initSwarm(t, first)
	first.stop()

	cfg := Config{
		DataDir: dir, ListenAddr: addr, ControlSocket: filepath.Join(dir, "ctl.sock"),
		Executor: newFakeExec().open, RaftTick: 20 * time.Millisecond, HeartbeatPeriod: 500 * time.Millisecond,
		Version: "shoald test", Logger: testLogger(t),
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	inResume, release := make(chan struct{}), make(chan struct{})
	n.resumeHook = func() { close(inResume); <-release }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
		cancel()
		select {
		case <-done:
		case <-time.After(waitFor):
			t.Errorf("node did not stop within %v", waitFor)
		}
	})
	select {
	case <-inResume:
	case err := <-done:
		t.Fatalf("node stopped at start: %v", err)
	case <-time.After(waitFor):
		t.Fatal("the node never began resuming")
	}
	if _, err := os.Stat(cfg.ControlSocket); err != nil {
		t.Fatalf("control socket not served while resuming: %v", err)
	}
	conn, err := grpc.NewClient("unix://"+cfg.ControlSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	local, control := api.NewLocalNodeClient(conn), api.NewControlClient(conn)

	_, err = control.ListNodes(cctx, &api.ListNodesRequest{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "This node is starting") {
		t.Fatalf("ListNodes while resuming: %v, want Unavailable \"This node is starting…\"", err)
	}
	in, err := local.Info(cctx, &api.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if in.GetState() != api.InfoResponse_PENDING {
		t.Fatalf("info while resuming: state %v, want PENDING", in.GetState())
	}
	_, err = local.Init(cctx, &api.InitRequest{ListenAddr: addr})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "already part of a swarm") {
		t.Fatalf("init while resuming: %v, want \"already part of a swarm\"", err)
	}
	_, err = local.Leave(cctx, &api.LeaveRequest{Force: true})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("leave while resuming: %v, want Unavailable", err)
	}

	close(release)
	released = true
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("node stopped while resuming: %v", err)
	case <-time.After(waitFor):
		t.Fatal("node not ready after resuming")
	}
	eventually(t, "ListNodes after resuming", func() error {
		_, err := control.ListNodes(cctx, &api.ListNodesRequest{})
		return err
	})
}
