package dockerapi

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	api "github.com/shoal-project/shoal/proto"
)

// slowControl answers GetCluster only when the call's context ends.
type slowControl struct{ fakeControl }

func (s *slowControl) GetCluster(ctx context.Context, _ *api.GetClusterRequest, _ ...grpc.CallOption) (*api.GetClusterResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// A request that outlives Config.RequestTimeout gets 504 naming the path.
func TestRequestDeadline(t *testing.T) {
	e := newEnv(t)
	s, err := newServer(Config{RequestTimeout: 50 * time.Millisecond}, &slowControl{}, e.local)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = s
	code, h, body := e.do("GET", "/v1.50/swarm", "")
	if m := e.message(h, body); code != 504 || !strings.Contains(m, "/swarm: no answer within 50ms") {
		t.Fatalf("%d %s", code, m)
	}
}

// A stream has no deadline and ends when the server stops.
func TestStreamEndsWhenServerStops(t *testing.T) {
	dir, err := os.MkdirTemp("", "dockerapi")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "d.sock")
	e := newEnv(t)
	s, err := newServer(Config{Socket: sock, RequestTimeout: 50 * time.Millisecond, ShutdownGrace: 100 * time.Millisecond}, e.control, e.local)
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	s.handle("GET /test-stream", func(ctx context.Context, w http.ResponseWriter, _ *http.Request) error {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("started\n"))
		w.(http.Flusher).Flush()
		<-ctx.Done()
		ended <- ctx.Err()
		return nil
	}, stream)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	<-s.Listening()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://docker/test-stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 8)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "started\n" {
		t.Fatalf("stream start: %q %v", buf, err)
	}
	select {
	case err := <-ended:
		t.Fatalf("the stream ended early (after the request timeout?): %v", err)
	case <-time.After(200 * time.Millisecond): // 4x the request timeout
	}
	cancel()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end when the server stopped")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
