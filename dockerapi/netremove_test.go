package dockerapi

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// netRemoveControl refuses RemoveNetwork as the manager does while tasks
// still hold the network, busy times, then removes it.
type netRemoveControl struct {
	api.ControlClient
	mu       sync.Mutex
	busy     int // refusals left
	calls    int
	services []*api.Service
}

var back = &api.Network{Id: "net1", Spec: &api.NetworkSpec{Annotations: &api.Annotations{Name: "app_back"}}}

func (c *netRemoveControl) GetNetwork(_ context.Context, r *api.GetNetworkRequest, _ ...grpc.CallOption) (*api.GetNetworkResponse, error) {
	if r.NetworkId != back.Id {
		return nil, errdefs.ToGRPC(errdefs.NotFound("network %s not found", r.NetworkId))
	}
	return &api.GetNetworkResponse{Network: back}, nil
}

func (c *netRemoveControl) RemoveNetwork(context.Context, *api.RemoveNetworkRequest, ...grpc.CallOption) (*api.RemoveNetworkResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.busy != 0 {
		c.busy--
		return nil, errdefs.ToGRPC(errdefs.FailedPrecondition("network app_back is in use by service app_web: remove them from the network first"))
	}
	return &api.RemoveNetworkResponse{}, nil
}

func (c *netRemoveControl) ListServices(context.Context, *api.ListServicesRequest, ...grpc.CallOption) (*api.ListServicesResponse, error) {
	return &api.ListServicesResponse{Services: c.services}, nil
}

// TestNetworkRemoveWaitsForStoppingTasks: DELETE /networks/{id} waits for
// the tasks of removed services to let the network go (docker stack rm
// removes networks right after the services), refuses at once when a
// service still uses the network, and gives up after networkRemoveWait.
func TestNetworkRemoveWaitsForStoppingTasks(t *testing.T) {
	defer func(w, p time.Duration) { networkRemoveWait, networkRemovePoll = w, p }(networkRemoveWait, networkRemovePoll)
	networkRemoveWait, networkRemovePoll = 2*time.Second, 10*time.Millisecond
	user := &api.Service{Id: "s1", Spec: &api.ServiceSpec{Annotations: &api.Annotations{Name: "app_web"},
		Task: &api.TaskSpec{Networks: []*api.NetworkAttachmentConfig{{Target: "net1"}}}}}
	for _, c := range []struct {
		name      string
		busy      int
		services  []*api.Service
		code      int
		calls     int
		remaining int
	}{
		{"tasks of removed services stopping", 3, nil, 204, 4, 0},
		{"a service uses it", 3, []*api.Service{user}, 400, 1, 2},
		{"never released", 1 << 30, nil, 400, -1, -1},
	} {
		ctl := &netRemoveControl{busy: c.busy, services: c.services}
		s, err := newServer(Config{Version: "0.1.0-test"}, ctl, &fakeLocal{info: &api.InfoResponse{State: api.InfoResponse_ACTIVE, ControlAvailable: true}})
		if err != nil {
			t.Fatal(err)
		}
		e := &env{t: t, srv: s}
		start := time.Now()
		code, h, body := e.do("DELETE", "/v1.41/networks/net1", "")
		took := time.Since(start)
		if code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, code, body, c.code)
		}
		if code != 204 && !strings.Contains(e.message(h, body), "network app_back is in use by service app_web") {
			t.Errorf("%s: message %q lacks the manager's", c.name, body)
		}
		if c.calls >= 0 && (ctl.calls != c.calls || ctl.busy != c.remaining) {
			t.Errorf("%s: %d RemoveNetwork calls (%d refusals left), want %d (%d)", c.name, ctl.calls, ctl.busy, c.calls, c.remaining)
		}
		if c.calls < 0 && (took < networkRemoveWait || took > networkRemoveWait+time.Second) {
			t.Errorf("%s: gave up after %v, want about %v", c.name, took, networkRemoveWait)
		}
	}
}
