package dashboard_test

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/dashboard"
	"github.com/shoal-project/shoal/internal/testcluster"
	api "github.com/shoal-project/shoal/proto"
)

func findService(st *dashboard.State, name string) *dashboard.ServiceView {
	for _, s := range st.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// The state, in the CLI's words; a scale through the API reaches the
// events stream as the new task running; bad requests get clear JSON
// errors and change nothing.
func TestAPIOnACluster(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Managers: 1, Workers: 1})
	c.WaitReady()
	c.CreateService(replicated("web", "img:1", 2))
	c.CreateService(&api.ServiceSpec{Annotations: &api.Annotations{Name: "agent"},
		Task: &api.TaskSpec{Container: &api.ContainerSpec{Image: "agent:1"}},
		Mode: &api.ServiceSpec_Global{Global: &api.GlobalService{}}})
	c.Converge("web", 2, time.Minute)
	cl := &client{t: t, base: startDash(t, c, "")}

	st := cl.state()
	if len(st.Nodes) != 2 {
		t.Fatalf("%d nodes, want 2", len(st.Nodes))
	}
	var leader, worker *dashboard.NodeView
	for _, n := range st.Nodes {
		if n.Status != "Ready" || n.Availability != "Active" {
			t.Errorf("node %s: status %q availability %q, want Ready Active", n.Hostname, n.Status, n.Availability)
		}
		switch n.Role {
		case "manager":
			leader = n
		case "worker":
			worker = n
		}
	}
	if leader == nil || leader.ManagerStatus != "Leader" || worker == nil || worker.ManagerStatus != "" {
		t.Fatalf("nodes: %+v %+v", leader, worker)
	}
	web := findService(st, "web")
	if web == nil || web.Mode != "replicated" || web.Replicas != 2 || web.Image != "img:1" || web.Version == 0 {
		t.Fatalf("service web: %+v", web)
	}
	if g := findService(st, "agent"); g == nil || g.Mode != "global" {
		t.Fatalf("service agent: %+v", g)
	}
	running := 0
	for _, tk := range st.Tasks {
		if tk.ServiceID == web.ID && tk.State == "Running" && tk.DesiredState == "Running" {
			running++
			if !strings.HasPrefix(tk.Name, "web.") {
				t.Errorf("task name %q, want web.N", tk.Name)
			}
		}
	}
	if running != 2 {
		t.Fatalf("%d running tasks of web, want 2", running)
	}

	ev := cl.events()
	ev.await("hello", func(e string, _ dashboard.Change, _ string) bool { return e == "hello" })
	n := int64(3)
	var out struct{ Service dashboard.ServiceView }
	if code, msg := cl.do("POST", "/api/services/"+web.ID+"/scale", "application/json",
		map[string]any{"version": web.Version, "replicas": n}, &out); code != 200 {
		t.Fatalf("scale: %d %s", code, msg)
	}
	if out.Service.Replicas != 3 {
		t.Fatalf("scale answered %+v", out.Service)
	}
	ev.await("task web.3 Running", func(e string, ch dashboard.Change, _ string) bool {
		return ch.Kind == "task" && field(ch, "name") == "web.3" && field(ch, "state") == "Running"
	})

	// Bad requests: each a JSON error, none changes the service.
	bad := []struct {
		name, path, ctype string
		body              any
		code              int
		msg               string
	}{
		{"stale version", "/api/services/" + web.ID + "/scale", "application/json", map[string]any{"version": web.Version, "replicas": 5}, 409, "changed since you saw it"},
		{"unknown service", "/api/services/nosuchservice/scale", "application/json", map[string]any{"version": 1, "replicas": 5}, 404, "not found"},
		{"service by name", "/api/services/web/scale", "application/json", map[string]any{"version": 1, "replicas": 5}, 404, "not found"},
		{"negative replicas", "/api/services/" + web.ID + "/scale", "application/json", map[string]any{"version": out.Service.Version, "replicas": -1}, 400, "replicas"},
		{"too many replicas", "/api/services/" + web.ID + "/scale", "application/json", map[string]any{"version": out.Service.Version, "replicas": 100001}, 400, "replicas"},
		{"no replicas", "/api/services/" + web.ID + "/scale", "application/json", map[string]any{"version": out.Service.Version}, 400, "replicas"},
		{"no version", "/api/services/" + web.ID + "/scale", "application/json", map[string]any{"replicas": 5}, 400, "version"},
		{"unknown field", "/api/services/" + web.ID + "/scale", "application/json", map[string]any{"version": out.Service.Version, "replicas": 5, "image": "x"}, 400, "unknown field"},
		{"form post", "/api/services/" + web.ID + "/scale", "application/x-www-form-urlencoded", map[string]any{"version": out.Service.Version, "replicas": 5}, 415, "application/json"},
		{"global service", "/api/services/" + findService(st, "agent").ID + "/scale", "application/json", map[string]any{"version": findService(st, "agent").Version, "replicas": 5}, 400, "replicated"},
		{"unknown node", "/api/nodes/nosuchnode/availability", "application/json", map[string]any{"version": 1, "availability": "drain"}, 404, "not found"},
		{"stale node", "/api/nodes/" + worker.ID + "/availability", "application/json", map[string]any{"version": worker.Version - 1, "availability": "drain"}, 409, "changed since you saw it"},
		{"bad availability", "/api/nodes/" + worker.ID + "/availability", "application/json", map[string]any{"version": worker.Version, "availability": "off"}, 400, "active, pause or drain"},
		{"rollback unknown", "/api/services/nosuchservice/rollback", "application/json", map[string]any{"version": 1}, 404, "not found"},
	}
	for _, b := range bad {
		code, msg := cl.do("POST", b.path, b.ctype, b.body, nil)
		if code != b.code || !strings.Contains(msg, b.msg) {
			t.Errorf("%s: %d %q, want %d and %q", b.name, code, msg, b.code, b.msg)
		}
	}
	if s := c.Service("web"); s.Spec.GetReplicated().GetReplicas() != 3 || s.Meta.Version != out.Service.Version {
		t.Fatalf("after the bad requests web has %d replicas at version %d, want 3 at %d",
			s.Spec.GetReplicated().GetReplicas(), s.Meta.Version, out.Service.Version)
	}
	if got := c.Nodes()[worker.ID].Spec.GetAvailability(); got != api.Availability_ACTIVE {
		t.Fatalf("after the bad requests the worker is %v", got)
	}

	// Drain the worker: its tasks move to the manager.
	if code, msg := cl.do("POST", "/api/nodes/"+worker.ID+"/availability", "application/json",
		map[string]any{"version": worker.Version, "availability": "drain"}, nil); code != 200 {
		t.Fatalf("drain: %d %s", code, msg)
	}
	ev.await("node Drain", func(_ string, ch dashboard.Change, _ string) bool {
		return ch.Kind == "node" && field(ch, "id") == worker.ID && field(ch, "availability") == "Drain"
	})
	c.WaitFor("web off the drained worker", time.Minute, func() error {
		if err := c.CheckRunning("web", 3); err != nil {
			return err
		}
		for _, tk := range c.Running("web") {
			if tk.NodeId == worker.ID {
				return errString("a task of web still runs on the worker")
			}
		}
		return nil
	})

	// Update then roll back through the API.
	c.UpdateService("web", func(s *api.ServiceSpec) { s.Task.Container.Image = "img:2" })
	c.WaitFor("web on img:2", time.Minute, func() error {
		if s := c.Service("web"); s.GetUpdateStatus().GetState() != api.UpdateStatus_COMPLETED {
			return errString("update " + s.GetUpdateStatus().GetState().String())
		}
		return nil
	})
	web2 := findService(cl.state(), "web")
	if !web2.CanRollback || web2.Image != "img:2" {
		t.Fatalf("after the update: %+v", web2)
	}
	if code, msg := cl.do("POST", "/api/services/"+web.ID+"/rollback", "application/json", map[string]any{"version": web2.Version}, nil); code != 200 {
		t.Fatalf("rollback: %d %s", code, msg)
	}
	ev.await("web rolling back", func(_ string, ch dashboard.Change, _ string) bool {
		st, _ := field(ch, "updateState").(string)
		return ch.Kind == "service" && field(ch, "name") == "web" && strings.HasPrefix(st, "rollback_") && field(ch, "image") == "img:1"
	})
}

// A loopback dashboard without a token answers only requests addressed to
// a loopback name: a page elsewhere cannot reach it by DNS rebinding.
func TestRebindingRefused(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Managers: 1})
	base := startDash(t, c, "")
	for host, want := range map[string]int{"evil.example:4243": 421, "10.1.2.3": 421, "localhost:4243": 200, "127.0.0.1": 200, "[::1]:4243": 200} {
		req, _ := http.NewRequest("GET", base+"/api/state", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// With a token every API call needs it; the login form sets it as a
// cookie; a remote address without a token or TLS is refused.
func TestToken(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Managers: 1})
	c.CreateService(replicated("web", "img:1", 1))
	base := startDash(t, c, "s3cret")
	anon := &client{t: t, base: base}
	web := c.Service("web")
	if code, msg := anon.do("GET", "/api/state", "", nil, nil); code != 401 || !strings.Contains(msg, "token") {
		t.Fatalf("state without the token: %d %q", code, msg)
	}
	if code, _ := anon.do("POST", "/api/services/"+web.Id+"/scale", "application/json", map[string]any{"version": web.Meta.Version, "replicas": 4}, nil); code != 401 {
		t.Fatalf("scale without the token: %d", code)
	}
	if code, _ := (&client{t: t, base: base, token: "wrong"}).do("GET", "/api/state", "", nil, nil); code != 401 {
		t.Fatalf("state with a wrong token: %d", code)
	}
	if got := c.Service("web"); got.Meta.Version != web.Meta.Version {
		t.Fatal("a request without the token changed the service")
	}
	if st := (&client{t: t, base: base, token: "s3cret"}).state(); findService(st, "web") == nil {
		t.Fatal("no web with the token")
	}
	// The page itself answers with the login form.
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("page without the token: %d", resp.StatusCode)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.PostForm(base+"/login", url.Values{"token": {"s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "shoal_dashboard" {
			cookie = ck
		}
	}
	if resp.StatusCode != http.StatusSeeOther || cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("login: %d, cookie %+v", resp.StatusCode, cookie)
	}
	req, _ := http.NewRequest("GET", base+"/api/state", nil)
	req.AddCookie(cookie)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("state with the cookie: %d", resp.StatusCode)
	}
	if resp, err = noRedirect.PostForm(base+"/login", url.Values{"token": {"nope"}}); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("login with a wrong token: %d", resp.StatusCode)
	}
	// A link with the token (as shoald's log tells) logs in and takes the
	// token out of the address; a wrong one does not.
	if resp, err = noRedirect.Get(base + "/?token=s3cret"); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/" || len(resp.Cookies()) != 1 || resp.Cookies()[0].Value != "s3cret" {
		t.Fatalf("link with the token: %d, Location %q, cookies %v", resp.StatusCode, loc, resp.Cookies())
	}
	if resp, err = noRedirect.Get(base + "/?token=nope"); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
		t.Fatalf("link with a wrong token: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}

	// A remote address needs a token or TLS.
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := dashboard.New(dashboard.Config{Conn: c.ConnVia(c.Leader()), Listener: ln}); err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Fatalf("remote without auth: %v", err)
	}
	if _, err := dashboard.New(dashboard.Config{Conn: c.ConnVia(c.Leader()), Listener: ln, Token: "x"}); err != nil {
		t.Fatalf("remote with a token: %v", err)
	}
	for addr, ok := range map[string]bool{"127.0.0.1:4243": true, "[::1]:1": true, "localhost:1": true, "0.0.0.0:4243": false, "10.0.0.1:80": false, ":4243": false} {
		if got := dashboard.IsLoopback(addr); got != ok {
			t.Errorf("IsLoopback(%q) = %v", addr, got)
		}
	}
}
