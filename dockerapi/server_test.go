package dockerapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// fakeControl and fakeLocal stand in for the manager in handler edge
// cases; the docker CLI test (test/dockercli) runs the real thing.
type fakeControl struct {
	api.ControlClient
	mu       sync.Mutex
	nodes    []*api.Node
	cluster  *api.Cluster
	err      error // returned by every call when set
	updates  []*api.UpdateClusterRequest
	pageSize int
}

func (f *fakeControl) GetNode(_ context.Context, r *api.GetNodeRequest, _ ...grpc.CallOption) (*api.GetNodeResponse, error) {
	if f.err != nil {
		return nil, errdefs.ToGRPC(f.err)
	}
	for _, n := range f.nodes {
		if n.Id == r.NodeId {
			return &api.GetNodeResponse{Node: n}, nil
		}
	}
	return nil, errdefs.ToGRPC(errdefs.NotFound("node %s not found", r.NodeId))
}

func (f *fakeControl) ListNodes(_ context.Context, r *api.ListNodesRequest, _ ...grpc.CallOption) (*api.ListNodesResponse, error) {
	if f.err != nil {
		return nil, errdefs.ToGRPC(f.err)
	}
	var out []*api.Node
	for _, n := range f.nodes {
		ok := true
		if names := r.GetFilters().GetNames(); len(names) > 0 {
			ok = n.Spec.GetAnnotations().GetName() == names[0] || n.GetDescription().GetHostname() == names[0]
		}
		if p := r.GetFilters().GetIdPrefixes(); len(p) > 0 {
			ok = strings.HasPrefix(n.Id, p[0])
		}
		if ok {
			out = append(out, n)
		}
	}
	// Pages of pageSize nodes, to exercise the pager.
	start := 0
	if r.PageToken != "" {
		start = int(r.PageToken[0] - '0')
	}
	if f.pageSize > 0 && len(out)-start > f.pageSize {
		return &api.ListNodesResponse{Nodes: out[start : start+f.pageSize], NextPageToken: string(rune('0' + start + f.pageSize))}, nil
	}
	return &api.ListNodesResponse{Nodes: out[start:]}, nil
}

func (f *fakeControl) GetCluster(context.Context, *api.GetClusterRequest, ...grpc.CallOption) (*api.GetClusterResponse, error) {
	if f.err != nil {
		return nil, errdefs.ToGRPC(f.err)
	}
	return &api.GetClusterResponse{Cluster: f.cluster}, nil
}

func (f *fakeControl) UpdateCluster(_ context.Context, r *api.UpdateClusterRequest, _ ...grpc.CallOption) (*api.UpdateClusterResponse, error) {
	if f.err != nil {
		return nil, errdefs.ToGRPC(f.err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, r)
	if r.ClusterVersion != f.cluster.GetMeta().GetVersion() {
		return nil, errdefs.ToGRPC(errdefs.Conflict("cluster %s: update out of sequence (version %d, current %d)", f.cluster.Id, r.ClusterVersion, f.cluster.Meta.Version))
	}
	return &api.UpdateClusterResponse{Cluster: f.cluster}, nil
}

type fakeLocal struct {
	api.LocalNodeClient
	info  *api.InfoResponse
	inits []*api.InitRequest
	err   error
}

func (f *fakeLocal) Info(context.Context, *api.InfoRequest, ...grpc.CallOption) (*api.InfoResponse, error) {
	return f.info, nil
}

func (f *fakeLocal) Init(_ context.Context, r *api.InitRequest, _ ...grpc.CallOption) (*api.InitResponse, error) {
	if f.err != nil {
		return nil, errdefs.ToGRPC(f.err)
	}
	f.inits = append(f.inits, r)
	return &api.InitResponse{NodeId: "node1"}, nil
}

func (f *fakeLocal) Leave(context.Context, *api.LeaveRequest, ...grpc.CallOption) (*api.LeaveResponse, error) {
	if f.err != nil {
		return nil, errdefs.ToGRPC(f.err)
	}
	return &api.LeaveResponse{}, nil
}

type env struct {
	t       *testing.T
	control *fakeControl
	local   *fakeLocal
	srv     *Server
}

func newEnv(t *testing.T) *env {
	e := &env{t: t, control: &fakeControl{
		cluster: &api.Cluster{Id: "c1", Meta: &api.Meta{Version: 3}, Spec: &api.ClusterSpec{
			Annotations:   &api.Annotations{Name: "default"},
			Orchestration: &api.OrchestrationSettings{TaskHistoryRetentionLimit: 5},
			Raft:          &api.RaftSettings{SnapshotInterval: 10000, ElectionTick: 10, HeartbeatTick: 1},
			SubnetSize:    26,
		}, RootCa: &api.RootCA{JoinTokens: &api.JoinTokens{Worker: "SWMTKN-w", Manager: "SWMTKN-m"}}},
	}, local: &fakeLocal{info: &api.InfoResponse{State: api.InfoResponse_ACTIVE, NodeId: "node1", ClusterId: "c1", ControlAvailable: true, NodeAddr: "10.0.0.1:4242", Nodes: 1, ManagerCount: 1,
		Managers: []*api.Peer{{NodeId: "node1", Addr: "10.0.0.1:4242"}}}}}
	s, err := newServer(Config{Version: "0.1.0-test", MaxBodyBytes: 1024}, e.control, e.local)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = s
	return e
}

// do sends a request and returns the status, headers and body.
func (e *env) do(method, path, body string) (int, http.Header, string) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	return rec.Code, rec.Header(), rec.Body.String()
}

// message decodes an error body, checking its content type.
func (e *env) message(h http.Header, body string) string {
	e.t.Helper()
	if ct := h.Get("Content-Type"); ct != "application/json" {
		e.t.Fatalf("error content type %q, body %s", ct, body)
	}
	var m struct{ Message string }
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		e.t.Fatalf("error body %q: %v", body, err)
	}
	return m.Message
}

func TestVersionNegotiation(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{"/_ping", 200, ""},
		{"/v1.41/_ping", 200, ""},
		{"/v1.50/_ping", 200, ""},
		{"/v1.40/_ping", 400, "client version 1.40 is too old. Minimum supported API version is 1.41, please upgrade your client to a newer version"},
		{"/v1.9/_ping", 400, "client version 1.9 is too old. Minimum supported API version is 1.41, please upgrade your client to a newer version"},
		{"/v1.51/_ping", 400, "client version 1.51 is too new. Maximum supported API version is 1.50"},
		{"/v2/_ping", 400, "client version 2 is too new. Maximum supported API version is 1.50"},
	} {
		code, h, body := e.do("GET", tc.path, "")
		if code != tc.code {
			t.Errorf("%s: %d %s", tc.path, code, body)
			continue
		}
		if h.Get("Api-Version") != "1.50" || h.Get("Ostype") != "linux" || h.Get("Docker-Experimental") != "false" {
			t.Errorf("%s: headers %v", tc.path, h)
		}
		if tc.code == 200 {
			if body != "OK" || h.Get("Swarm") != "active/manager" {
				t.Errorf("%s: body %q swarm %q", tc.path, body, h.Get("Swarm"))
			}
		} else if m := e.message(h, body); m != tc.msg {
			t.Errorf("%s: %q", tc.path, m)
		}
	}
	code, h, body := e.do("HEAD", "/_ping", "")
	if code != 200 || body != "" || h.Get("Api-Version") != "1.50" {
		t.Errorf("HEAD /_ping: %d %q %v", code, body, h)
	}
	e.local.info = &api.InfoResponse{State: api.InfoResponse_ACTIVE}
	if _, h, _ := e.do("HEAD", "/_ping", ""); h.Get("Swarm") != "active/worker" {
		t.Errorf("worker ping: %v", h)
	}
	e.local.info = &api.InfoResponse{}
	if _, h, _ := e.do("HEAD", "/_ping", ""); h.Get("Swarm") != "inactive" {
		t.Errorf("inactive ping: %v", h)
	}
}

func TestNotFoundAndNotImplemented(t *testing.T) {
	e := newEnv(t)
	// Unknown paths and wrong methods: dockerd's 404 "page not found",
	// naming the path and what it takes.
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/nope", "page not found: GET /nope is not an Engine API endpoint"},
		{"GET", "/v1.41/nope/x", "page not found: GET /nope/x is not an Engine API endpoint"},
		{"DELETE", "/swarm", "page not found: /swarm does not take DELETE (it takes GET)"},
		{"POST", "/swarm/unlockkey", "page not found: /swarm/unlockkey does not take POST (it takes GET)"},
		{"GET", "/v1.50/swarm/init", "page not found: /swarm/init does not take GET (it takes POST)"},
		{"PUT", "/services/web", "page not found: /services/web does not take PUT (it takes GET or DELETE)"},
		{"HEAD", "/swarm/leave", "page not found: /swarm/leave does not take HEAD (it takes POST)"},
	} {
		code, h, body := e.do(c.method, c.path, "")
		if m := e.message(h, body); code != 404 || m != c.want {
			t.Errorf("%s %s: %d %q, want 404 %q", c.method, c.path, code, m, c.want)
		}
	}
	for _, p := range []string{"/containers/json", "/v1.41/containers/abc/start", "/images/json", "/build", "/exec/x/start", "/system/df"} {
		code, h, body := e.do("GET", p, "")
		if m := e.message(h, body); code != 501 || !strings.Contains(m, "shoal runs swarm services") {
			t.Errorf("%s: %d %s", p, code, m)
		}
	}
	// The unsupported prefixes do not hide the swarm routes beside them.
	if code, _, _ := e.do("GET", "/v1.41/nodes/x", ""); code == 501 {
		t.Error("an unsupported prefix hides GET /nodes/{id}")
	}
	if _, h, body := e.do("GET", "/containers/json", ""); !strings.Contains(e.message(h, body), "docker service ps") {
		t.Errorf("containers: %s", body)
	}
}

func TestStatusMapping(t *testing.T) {
	nm := errdefs.FromGRPC(errdefs.ToGRPC(errdefs.ErrNotManager))
	for _, tc := range []struct {
		err  error
		code int
		msg  string
	}{
		{errdefs.InvalidArgument("bad"), 400, "bad"},
		{errdefs.NotFound("service x not found"), 404, "service x not found"},
		{errdefs.AlreadyExists("exists"), 409, "exists"},
		{errdefs.Conflict("service x: stale"), 409, "update out of sequence: service x: stale"},
		{errdefs.Conflict("update out of sequence"), 409, "update out of sequence"},
		{errdefs.FailedPrecondition("in use"), 400, "in use"},
		{errdefs.PermissionDenied("no"), 403, "no"},
		{errdefs.ErrNoLeader, 503, errdefs.ErrNoLeader.Error()},
		{errdefs.Newf(errdefs.ErrNotImplemented, "later"), 501, "later"},
		{errdefs.Internal("boom"), 500, "boom"},
		{nm, 503, msgWorker},
		{errdefs.FailedPrecondition(`This node is not part of a swarm. Use "shoal swarm init"`), 503, msgNoManager},
		{errdefs.Unavailable(`Swarm is encrypted and needs to be unlocked before it can be used. Please use "shoal swarm unlock" to unlock it.`), 503, msgLocked},
		{errdefs.FailedPrecondition(`This node is already part of a swarm. Use "shoal swarm leave"`), 503, msgInSwarm},
	} {
		code, msg := statusOf(errdefs.FromGRPC(errdefs.ToGRPC(tc.err)))
		if code != tc.code || msg != tc.msg {
			t.Errorf("%v: %d %q, want %d %q", tc.err, code, msg, tc.code, tc.msg)
		}
	}
}

func TestWorkerGets503(t *testing.T) {
	e := newEnv(t)
	e.control.err = errdefs.ErrNotManager
	for _, p := range []string{"/v1.41/swarm", "/v1.41/nodes/x"} {
		code, h, body := e.do("GET", p, "")
		if code != 503 || e.message(h, body) != msgWorker {
			t.Errorf("%s: %d %s", p, code, body)
		}
	}
}

func TestStrictBody(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		body string
		code int
		msg  string
	}{
		{`{"ListenAddr":"0.0.0.0:2377","Bogus":1}`, 400, `invalid JSON in request body: unknown field "Bogus"`},
		{`{"Spec":{"Orchestration":{"TaskHistoryRetentionLimit":"x"}}}`, 400, "invalid JSON in request body: field Spec.Orchestration.TaskHistoryRetentionLimit: cannot use a JSON string as int64"},
		{`{"ListenAddr":`, 400, "invalid JSON in request body: it ends early"},
		{`{} {}`, 400, "more data after the JSON value"},
		{`{"ListenAddr":"` + strings.Repeat("a", 2000) + `"}`, 413, "request body is larger than the limit of 1024 bytes"},
		{``, 400, "the request body is empty"},
		{`{"listenaddr":"1.2.3.4:5","availability":"drain"}`, 200, ""},
	} {
		code, h, body := e.do("POST", "/v1.50/swarm/init", tc.body)
		if code != tc.code {
			t.Errorf("%.40s: %d %s", tc.body, code, body)
			continue
		}
		if tc.code != 200 && !strings.Contains(e.message(h, body), tc.msg) {
			t.Errorf("%.40s: %q, want %q", tc.body, e.message(h, body), tc.msg)
		}
	}
	if n := len(e.local.inits); n != 1 || e.local.inits[0].ListenAddr != "1.2.3.4:5" || e.local.inits[0].Availability != api.Availability_DRAIN {
		t.Fatalf("init requests: %v", e.local.inits)
	}
}

func TestSwarmInitAnswersNodeID(t *testing.T) {
	e := newEnv(t)
	body := `{"ListenAddr":"0.0.0.0:2377","AdvertiseAddr":"10.0.0.1","DataPathAddr":"","DataPathPort":0,"ForceNewCluster":false,"Spec":{"Labels":null,"Orchestration":{},"Raft":{"ElectionTick":0,"HeartbeatTick":0},"Dispatcher":{},"CAConfig":{},"TaskDefaults":{},"EncryptionConfig":{"AutoLockManagers":false}},"AutoLockManagers":false,"Availability":"","DefaultAddrPool":[],"SubnetSize":24}`
	code, h, out := e.do("POST", "/v1.50/swarm/init", body)
	if code != 200 || strings.TrimSpace(out) != `"node1"` || h.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q %v", code, out, h)
	}
	e.local.err = errdefs.FailedPrecondition(`This node is already part of a swarm. Use "shoal swarm leave" to leave this swarm and join another one.`)
	code, h, out = e.do("POST", "/v1.50/swarm/init", body)
	if code != 503 || e.message(h, out) != msgInSwarm {
		t.Fatalf("second init: %d %s", code, out)
	}
	e.local.err = errdefs.FailedPrecondition(`This node is not part of a swarm. Use "shoal swarm init" or "shoal swarm join" to connect this node to swarm and try again.`)
	code, h, out = e.do("POST", "/v1.50/swarm/leave?force=1", "")
	if code != 503 || e.message(h, out) != msgNoSwarm {
		t.Fatalf("leave outside a swarm: %d %s", code, out)
	}
}

func TestSwarmUpdate(t *testing.T) {
	e := newEnv(t)
	_, _, body := e.do("GET", "/v1.50/swarm", "")
	var sw struct {
		Version    struct{ Index uint64 }
		Spec       json.RawMessage
		JoinTokens struct{ Worker, Manager string }
		SubnetSize uint32
	}
	if err := json.Unmarshal([]byte(body), &sw); err != nil || sw.Version.Index != 3 || sw.JoinTokens.Worker != "SWMTKN-w" || sw.SubnetSize != 26 {
		t.Fatalf("GET /swarm: %v %s", err, body)
	}
	spec := strings.Replace(string(sw.Spec), `"TaskHistoryRetentionLimit":5`, `"TaskHistoryRetentionLimit":3`, 1)
	code, _, out := e.do("POST", "/v1.50/swarm/update?version=3&rotateWorkerToken=true&rotateManagerToken=false&rotateManagerUnlockKey=0", spec)
	if code != 200 {
		t.Fatalf("update: %d %s", code, out)
	}
	u := e.control.updates[0]
	want := proto.Clone(e.control.cluster.Spec).(*api.ClusterSpec)
	want.Orchestration.TaskHistoryRetentionLimit = 3
	if u.ClusterId != "c1" || u.ClusterVersion != 3 || !u.Rotation.WorkerJoinToken || u.Rotation.ManagerJoinToken || u.Rotation.ManagerUnlockKey || !proto.Equal(u.Spec, want) {
		t.Fatalf("update request %v", u)
	}
	code, h, out := e.do("POST", "/v1.50/swarm/update?version=2", spec)
	if code != 409 || !strings.Contains(e.message(h, out), "update out of sequence") {
		t.Fatalf("stale update: %d %s", code, out)
	}
	code, h, out = e.do("POST", "/v1.50/swarm/update?version=x", spec)
	if code != 400 || !strings.HasPrefix(e.message(h, out), "invalid swarm version 'x'") {
		t.Fatalf("bad version: %d %s", code, out)
	}
	code, h, out = e.do("POST", "/v1.50/swarm/update?version=3", `{"Raft":{"ElectionTick":20}}`)
	if code != 400 || !strings.HasPrefix(e.message(h, out), "Raft.ElectionTick is not supported by shoal") {
		t.Fatalf("tick change: %d %s", code, out)
	}
}

func TestInfo(t *testing.T) {
	e := newEnv(t)
	code, _, body := e.do("GET", "/v1.41/info", "")
	var info struct {
		OSType, Architecture, ServerVersion string
		Swarm                               struct {
			NodeID, NodeAddr, LocalNodeState string
			ControlAvailable                 bool
			Nodes, Managers                  int
			RemoteManagers                   []struct{ NodeID, Addr string }
			Cluster                          *struct {
				ID   string
				Spec struct {
					Orchestration struct{ TaskHistoryRetentionLimit int }
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &info); err != nil || code != 200 {
		t.Fatalf("%d %v %s", code, err, body)
	}
	sw := info.Swarm
	if info.OSType != "linux" || info.ServerVersion != "0.1.0-test" || sw.LocalNodeState != "active" || !sw.ControlAvailable || sw.NodeID != "node1" ||
		sw.NodeAddr != "10.0.0.1" || sw.Nodes != 1 || sw.Managers != 1 || len(sw.RemoteManagers) != 1 || sw.Cluster == nil || sw.Cluster.ID != "c1" ||
		sw.Cluster.Spec.Orchestration.TaskHistoryRetentionLimit != 5 {
		t.Fatalf("info: %s", body)
	}
	e.local.info = &api.InfoResponse{}
	_, _, body = e.do("GET", "/info", "")
	if !strings.Contains(body, `"LocalNodeState":"inactive"`) || strings.Contains(body, `"Cluster":{`) {
		t.Fatalf("inactive info: %s", body)
	}
}

func TestLookup(t *testing.T) {
	e := newEnv(t)
	e.control.pageSize = 1
	e.control.nodes = []*api.Node{
		{Id: "abc111", Spec: &api.NodeSpec{Annotations: &api.Annotations{Name: "alpha"}}, Description: &api.NodeDescription{Hostname: "h1"}},
		{Id: "abc222", Description: &api.NodeDescription{Hostname: "h2"}},
		{Id: "xyz333", Description: &api.NodeDescription{Hostname: "abc111x"}},
	}
	f := e.srv.nodes()
	ctx := context.Background()
	for ref, want := range map[string]string{"abc111": "abc111", "alpha": "abc111", "h2": "abc222", "abc2": "abc222", "xy": "xyz333"} {
		n, err := f.lookup(ctx, ref)
		if err != nil || n.Id != want {
			t.Errorf("lookup(%s) = %v, %v; want %s", ref, n.GetId(), err, want)
		}
	}
	if _, err := f.lookup(ctx, "abc"); err == nil || err.Error() != "node abc is ambiguous (2 matches found)" {
		t.Errorf("ambiguous: %v", err)
	}
	if c, m := statusOf(must(f.lookup(ctx, "nope"))); c != 404 || m != "node nope not found" {
		t.Errorf("not found: %d %s", c, m)
	}
	code, _, body := e.do("GET", "/v1.41/nodes/alpha", "")
	if code != 200 || !strings.Contains(body, `"ID":"abc111"`) {
		t.Errorf("GET /nodes/alpha: %d %s", code, body)
	}
}

func must[T any](_ T, err error) error { return err }
