package dockerapi

import (
	"context"
	"encoding/json"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/dockerapi/events"
	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// TestNodeList: dockerd's node filters, matched on the gateway's side.
func TestNodeList(t *testing.T) {
	e := newEnv(t)
	e.control.nodes = []*api.Node{
		{Id: "abc111", Spec: &api.NodeSpec{Annotations: &api.Annotations{Name: "alpha", Labels: map[string]string{"zone": "a"}}},
			Description: &api.NodeDescription{Hostname: "h1", Engine: &api.EngineDescription{Labels: map[string]string{"disk": "ssd"}}}},
		{Id: "xyz222", Description: &api.NodeDescription{Hostname: "beta"}},
	}
	for q, want := range map[string][]string{
		"":                                        {"abc111", "xyz222"},
		`{"id":{"xy":true}}`:                      {"xyz222"},
		`{"name":{"be":true}}`:                    {"xyz222"},
		`{"name":["alpha"]}`:                      {"abc111"},
		`{"node.label":{"zone=a":true}}`:          {"abc111"},
		`{"label":{"disk=ssd":true}}`:             {"abc111"},
		`{"label":{"zone=a":true}}`:               {},
		`{"role":{"worker":true,"manager":true}}`: {"abc111", "xyz222"},
	} {
		code, _, body := e.do("GET", "/nodes?filters="+queryEscape(q), "")
		if code != 200 {
			t.Errorf("filters %s: %d %s", q, code, body)
			continue
		}
		var nodes []swarm.Node
		if err := json.Unmarshal([]byte(body), &nodes); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, n := range nodes {
			got = append(got, n.ID)
		}
		if len(got) != len(want) || (len(got) > 0 && got[0] != want[0]) {
			t.Errorf("filters %s: %v, want %v", q, got, want)
		}
	}
	for q, msg := range map[string]string{
		`{"colour":{"x":true}}`:  "invalid filter 'colour'",
		`{"role":{"boss":true}}`: "invalid filter 'role=boss': use manager or worker",
	} {
		code, h, body := e.do("GET", "/nodes?filters="+queryEscape(q), "")
		if m := e.message(h, body); code != 400 || m != msg {
			t.Errorf("filters %s: %d %q, want 400 %q", q, code, m, msg)
		}
	}
	code, h, body := e.do("POST", "/nodes/alpha/update", `{"Role":"worker"}`)
	if m := e.message(h, body); code != 400 || m != "the version query parameter is required: send the object's Version.Index from its inspect (?version=N)" {
		t.Errorf("update without version: %d %q", code, m)
	}
}

// TestObjectEdges: answers that need no manager.
func TestObjectEdges(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		method, path string
		code         int
		msg          string
	}{
		{"GET", "/events", 503, "the event stream is not running on this node: events come from the manager's watch stream"},
		{"GET", "/networks?filters=" + queryEscape(`{"type":{"bogus":true}}`), 400, "invalid filter: 'type'='bogus': use custom or builtin"},
		{"GET", "/networks/x?scope=local", 404, "network x not found: shoal's networks are swarm-scoped, none has scope local"},
		{"GET", "/secrets?filters=" + queryEscape(`{"driver":{"x":true}}`), 400, "invalid filter 'driver'"},
		{"POST", "/configs/x/update?version=abc", 400, `invalid version "abc": it must be the object's Version.Index, a number`},
	} {
		code, h, body := e.do(c.method, c.path, "")
		if m := e.message(h, body); code != c.code || m != c.msg {
			t.Errorf("%s %s: %d %q, want %d %q", c.method, c.path, code, m, c.code, c.msg)
		}
	}
}

func queryEscape(s string) string { return url.QueryEscape(s) }

// managerLocal says whether this node serves the control API.
type managerLocal struct {
	api.LocalNodeClient
	manager atomic.Bool
	calls   atomic.Int32
}

func (m *managerLocal) Info(context.Context, *api.InfoRequest, ...grpc.CallOption) (*api.InfoResponse, error) {
	m.calls.Add(1)
	return &api.InfoResponse{ControlAvailable: m.manager.Load()}, nil
}

type countingWatch struct{ calls atomic.Int32 }

func (c *countingWatch) Watch(context.Context, *api.WatchRequest, ...grpc.CallOption) (grpc.ServerStreamingClient[api.WatchMessage], error) {
	c.calls.Add(1)
	return nil, errdefs.Unavailable("test")
}

// TestManagerWatcher: no Watch call while the node is not a manager; a
// wake after it became one calls Watch at once, not at the next poll.
func TestManagerWatcher(t *testing.T) {
	local, watch := &managerLocal{}, &countingWatch{}
	mw := &managerWatcher{watch: watch, local: local, kick: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := mw.Watch(ctx, events.WatchRequest()); done <- err }()
	time.Sleep(100 * time.Millisecond)
	if watch.calls.Load() != 0 || local.calls.Load() != 1 {
		t.Fatalf("before promotion: %d watch calls, %d info calls", watch.calls.Load(), local.calls.Load())
	}
	local.manager.Store(true)
	start := time.Now()
	mw.wake()
	select {
	case <-done:
	case <-time.After(managerPoll / 2):
		t.Fatalf("a woken watcher did not call Watch within %s", managerPoll/2)
	}
	if watch.calls.Load() != 1 {
		t.Fatalf("watch calls %d", watch.calls.Load())
	}
	t.Logf("Watch called %s after the wake", time.Since(start))

	// Cancelled while waiting: returns the context's error.
	local.manager.Store(false)
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { _, err := mw.Watch(ctx2, events.WatchRequest()); done <- err }()
	cancel2()
	if err := <-done; err != context.Canceled {
		t.Fatalf("cancelled wait: %v", err)
	}
}
