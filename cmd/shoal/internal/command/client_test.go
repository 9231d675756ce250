package command

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// fakeDaemon serves Control on a unix socket with scripted behaviour.
type fakeDaemon struct {
	api.UnimplementedControlServer
	srv   *grpc.Server
	calls []string
	// configs are served three per page.
	configs []*api.Config
}

func (f *fakeDaemon) RemoveService(context.Context, *api.RemoveServiceRequest) (*api.RemoveServiceResponse, error) {
	f.calls = append(f.calls, "RemoveService")
	f.srv.Stop() // the daemon dies (kill -9) during the call
	select {}
}

func (f *fakeDaemon) GetService(ctx context.Context, _ *api.GetServiceRequest) (*api.GetServiceResponse, error) {
	<-ctx.Done() // never answers
	return nil, ctx.Err()
}

func (f *fakeDaemon) UpdateService(context.Context, *api.UpdateServiceRequest) (*api.UpdateServiceResponse, error) {
	return nil, status.Error(codes.DeadlineExceeded, "timed out waiting for the write to commit (quorum lost: 1 of 3 managers reachable)")
}

func (f *fakeDaemon) CreateService(context.Context, *api.CreateServiceRequest) (*api.CreateServiceResponse, error) {
	f.calls = append(f.calls, "CreateService")
	return &api.CreateServiceResponse{}, nil
}

func (f *fakeDaemon) ListConfigs(_ context.Context, req *api.ListConfigsRequest) (*api.ListConfigsResponse, error) {
	f.calls = append(f.calls, "ListConfigs:"+req.GetPageToken())
	start := 0
	for start < len(f.configs) && req.GetPageToken() != "" && f.configs[start].Id <= req.GetPageToken() {
		start++
	}
	end := min(start+3, len(f.configs))
	out := &api.ListConfigsResponse{Configs: f.configs[start:end]}
	if end < len(f.configs) {
		out.NextPageToken = f.configs[end-1].Id
	}
	return out, nil
}

func startFake(t *testing.T) (*fakeDaemon, *Client) {
	t.Helper()
	dir, err := os.MkdirTemp("", "shoalcli")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDaemon{srv: grpc.NewServer()}
	api.RegisterControlServer(f.srv, f)
	go func() { _ = f.srv.Serve(lis) }()
	t.Cleanup(f.srv.Stop)
	c, err := Dial("unix://"+sock, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return f, c
}

// TestLostDaemonSaysWhatHappened: a daemon killed during a write gives a
// sentence, not "EOF" or "broken pipe", that says the write may have been
// applied.
func TestLostDaemonSaysWhatHappened(t *testing.T) {
	_, c := startFake(t)
	_, err := c.Control.RemoveService(context.Background(), &api.RemoveServiceRequest{ServiceId: "web"})
	var te *TransportError
	if !errors.As(err, &te) || !errdefs.IsUnavailable(err) {
		t.Fatalf("got %v (%T)", err, err)
	}
	want := "the shoal daemon at " + c.Host + " closed the connection during the call (its process may have exited or restarted): " +
		"the change may or may not have been applied: check the current state (e.g. `shoal service ls`, `shoal service ps`) before retrying"
	if err.Error() != want {
		t.Errorf("got  %q\nwant %q", err, want)
	}
	// The next call finds nobody: nothing was sent.
	_, err = c.Control.CreateService(context.Background(), &api.CreateServiceRequest{})
	if err == nil || !strings.Contains(err.Error(), "the change was not applied: retry") {
		t.Errorf("after the daemon is gone: %v", err)
	}
}

// TestDeadlinesSayWhetherTheWriteMayHaveBeenApplied: the CLI's own
// deadline and the daemon's both say what became of the change.
func TestDeadlinesSayWhetherTheWriteMayHaveBeenApplied(t *testing.T) {
	_, c := startFake(t)
	_, err := c.Control.GetService(context.Background(), &api.GetServiceRequest{ServiceId: "web"})
	if want := "the shoal daemon at " + c.Host + " did not answer within 200ms: nothing was changed: retry"; err == nil || err.Error() != want {
		t.Errorf("read: got %v", err)
	}
	_, err = c.Control.UpdateService(context.Background(), &api.UpdateServiceRequest{ServiceId: "web"})
	want := "Error response from daemon: timed out waiting for the write to commit (quorum lost: 1 of 3 managers reachable): " +
		"the change may or may not have been applied: check the current state (e.g. `shoal service ls`, `shoal service ps`) before retrying"
	if err == nil || err.Error() != want {
		t.Errorf("write: got %v", err)
	}
}

// TestPagesAreFollowed: a paged list comes back whole.
func TestPagesAreFollowed(t *testing.T) {
	f, c := startFake(t)
	for i := 0; i < 8; i++ {
		f.configs = append(f.configs, &api.Config{Id: fmt.Sprintf("c%d", i)})
	}
	resp, err := c.Control.ListConfigs(context.Background(), &api.ListConfigsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetConfigs()) != 8 || resp.GetNextPageToken() != "" {
		t.Fatalf("%d configs, token %q", len(resp.GetConfigs()), resp.GetNextPageToken())
	}
	for i, cfg := range resp.GetConfigs() {
		if cfg.Id != fmt.Sprintf("c%d", i) {
			t.Fatalf("config %d is %s", i, cfg.Id)
		}
	}
	if got := strings.Join(f.calls, " "); got != "ListConfigs: ListConfigs:c2 ListConfigs:c5" {
		t.Errorf("calls: %s", got)
	}
}

// TestTextMustBeUTF8: a request with text that is not UTF-8 is refused
// before it is sent, naming the flag.
func TestTextMustBeUTF8(t *testing.T) {
	f, c := startFake(t)
	_, err := c.Control.CreateService(context.Background(), &api.CreateServiceRequest{Spec: &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "web"},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "nginx", Env: []string{"A=1", "B=\xff"}}},
	}})
	want := `the environment variable (--env) "B=\xff" is not valid UTF-8: shoal sends text as UTF-8; fix the encoding of that value (request field spec.task.container.env[1])`
	if err == nil || err.Error() != want {
		t.Errorf("got %v", err)
	}
	if len(f.calls) != 0 {
		t.Errorf("sent: %v", f.calls)
	}
}
