package simagent

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// countingListener counts the connections it accepted that are still open.
type countingListener struct {
	net.Listener
	open *atomic.Int64
}

type countedConn struct {
	net.Conn
	open   *atomic.Int64
	closed atomic.Bool
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.open.Add(1)
	return &countedConn{Conn: c, open: l.open}, nil
}

func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.open.Add(-1)
	}
	return c.Conn.Close()
}

// Nodes whose sessions keep failing move from manager to manager and keep
// a connection to each, until the fleet holds MaxConns: then a node that
// dials closes its others, and the managers see them closed.
func TestMaxConnsBoundsTheFleetsConnections(t *testing.T) {
	var open atomic.Int64
	var addrs []string
	for range 3 {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer()
		// Every Session fails at once (Unimplemented): the node tries the
		// next manager after its backoff.
		api.RegisterDispatcherServer(s, api.UnimplementedDispatcherServer{})
		go func() { _ = s.Serve(countingListener{Listener: lis, open: &open}) }()
		t.Cleanup(s.Stop)
		addrs = append(addrs, lis.Addr().String())
	}
	const nodes, maxConns = 10, 15
	f := New(Config{Managers: func() []string { return addrs }, MaxConns: maxConns})
	defer f.Close()
	dial := func(_ context.Context, addr string) (*grpc.ClientConn, error) {
		return grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	for i := range nodes {
		if _, err := f.Add(string(rune('a'+i)), "h", dial); err != nil {
			t.Fatal(err)
		}
	}
	// Without the bound the nodes would hold 30 connections once each has
	// tried every manager (3 sessions each, about a second of backoffs).
	deadline := time.Now().Add(20 * time.Second)
	for f.Stats().ConnsClosed < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("no connections closed within 20s: %+v", f.Stats())
		}
		if n := f.stats.conns.Load(); n > maxConns+nodes {
			t.Fatalf("the fleet holds %d connections, bound %d", n, maxConns)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The bound is checked as a node dials: a node past it closes all its
	// others, so the fleet holds at most the bound (a dial in flight each
	// may pass it for a moment).
	for range 100 {
		if n := f.stats.conns.Load(); n > maxConns+nodes {
			t.Fatalf("the fleet holds %d connections, bound %d", n, maxConns)
		}
		if n := open.Load(); n > maxConns+nodes {
			t.Fatalf("the managers hold %d of the fleet's connections, bound %d", n, maxConns)
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.Close()
	deadline = time.Now().Add(10 * time.Second)
	for open.Load() != 0 || f.stats.conns.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after Close: the managers hold %d connections, the fleet counts %d", open.Load(), f.stats.conns.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
