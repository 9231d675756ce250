package dockercli

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// badBodyLimit is the --docker-max-body of TestEngineAPIBadInput's daemon:
// small, so a body just over it is cheap to send.
const badBodyLimit = 64 << 10

// TestEngineAPIBadInput sends bad requests over the unix socket of a real
// shoald in a swarm: each is answered with a 4xx (or 501) and a JSON
// {"message": ...} naming what is wrong, and none changes the services,
// nodes, swarm (join tokens included), secrets, configs or networks.
func TestEngineAPIBadInput(t *testing.T) {
	d := startDaemon(t, docker28, "", "--docker-max-body", fmt.Sprint(badBodyLimit))
	d.mustDocker("swarm", "init", "--listen-addr", d.addr, "--advertise-addr", d.addr)

	// A service with no replicas (no image is pulled), updated once so that
	// its first version is stale; the node and the swarm likewise.
	const spec = `{"Name":"web","Labels":{"v":"1"},"TaskTemplate":{"ContainerSpec":{"Image":"busybox:latest"}},"Mode":{"Replicated":{"Replicas":0}}}`
	if code, body := d.api(t, "POST", "/v1.50/services/create", spec); code != 201 {
		t.Fatalf("create web: %d %s", code, body)
	}
	svcV0 := objectVersion(t, d, "/v1.50/services/web")
	if code, body := d.api(t, "POST", fmt.Sprintf("/v1.50/services/web/update?version=%d", svcV0), strings.Replace(spec, `"v":"1"`, `"v":"2"`, 1)); code != 200 {
		t.Fatalf("update web: %d %s", code, body)
	}
	svcV := objectVersion(t, d, "/v1.50/services/web")
	nodeID := strings.TrimSpace(d.mustDocker("info", "--format", "{{.Swarm.NodeID}}"))
	nodeV0 := objectVersion(t, d, "/v1.50/nodes/"+nodeID)
	d.mustDocker("node", "update", "--label-add", "zone=a", nodeID)
	nodeV := objectVersion(t, d, "/v1.50/nodes/"+nodeID)
	swarmV0 := objectVersion(t, d, "/v1.50/swarm")
	d.mustDocker("swarm", "update", "--task-history-limit", "3")
	swarmV := objectVersion(t, d, "/v1.50/swarm")
	if svcV <= svcV0 || nodeV <= nodeV0 || swarmV <= swarmV0 {
		t.Fatalf("versions did not move: service %d→%d, node %d→%d, swarm %d→%d", svcV0, svcV, nodeV0, nodeV, swarmV0, swarmV)
	}
	var swarmSpec struct{ Spec json.RawMessage }
	getJSON(t, d, "/v1.50/swarm", &swarmSpec)
	before := clusterState(t, d)

	big := `{"Name":"big","Labels":{"pad":"` + strings.Repeat("x", badBodyLimit) + `"},"TaskTemplate":{"ContainerSpec":{"Image":"busybox:latest"}}}`
	svc := func(replicas string) string {
		return `{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"busybox:latest"}},"Mode":{"Replicated":{"Replicas":` + replicas + `}}}`
	}
	update := fmt.Sprintf("/v1.50/services/web/update?version=%d", svcV)
	cases := []struct {
		name         string
		method, path string
		body         string
		code         int
		want         []string // in the message
	}{
		// Bodies: malformed, unknown and mistyped fields, negative counts.
		{"create: malformed JSON", "POST", "/v1.50/services/create", `{"Name": "bad",`, 400, []string{"invalid JSON in request body", "ends early"}},
		{"create: not JSON", "POST", "/v1.50/services/create", `Name=bad`, 400, []string{"invalid JSON in request body", "invalid character 'N'"}},
		{"create: two JSON values", "POST", "/v1.50/services/create", svc("1") + ` {}`, 400, []string{"more data after the JSON value"}},
		{"create: empty body", "POST", "/v1.50/services/create", ``, 400, []string{"the request body is empty"}},
		{"create: unknown field", "POST", "/v1.50/services/create", `{"Name":"bad","Replcas":2,"TaskTemplate":{"ContainerSpec":{"Image":"busybox:latest"}}}`, 400, []string{`unknown field "Replcas"`}},
		{"create: mistyped replicas", "POST", "/v1.50/services/create", strings.Replace(svc(`"three"`), `"web"`, `"bad"`, 1), 400, []string{"Mode.Replicated.Replicas", "string"}},
		{"create: negative replicas", "POST", "/v1.50/services/create", strings.Replace(svc(`-1`), `"web"`, `"bad"`, 1), 400, []string{"Mode.Replicated.Replicas", "number -1"}},
		{"create: mistyped name", "POST", "/v1.50/services/create", `{"Name":7,"TaskTemplate":{"ContainerSpec":{"Image":"busybox:latest"}}}`, 400, []string{"Annotations.Name", "JSON number"}},
		{"create: no image", "POST", "/v1.50/services/create", `{"Name":"bad"}`, 400, []string{"needs a ContainerSpec with an Image"}},
		{"create: name taken", "POST", "/v1.50/services/create", spec, 409, []string{"web"}},
		{"create: body over the limit", "POST", "/v1.50/services/create", big, 413, []string{fmt.Sprintf("limit of %d bytes", badBodyLimit), "--docker-max-body"}},
		{"update: malformed JSON", "POST", update, `{"Name":"web"`, 400, []string{"invalid JSON in request body"}},
		{"update: unknown field", "POST", update, `{"Name":"web","Bogus":true,"TaskTemplate":{"ContainerSpec":{"Image":"busybox:latest"}}}`, 400, []string{`unknown field "Bogus"`}},
		{"update: mistyped replicas", "POST", update, svc(`"three"`), 400, []string{"Mode.Replicated.Replicas"}},
		{"update: negative replicas", "POST", update, svc(`-3`), 400, []string{"Mode.Replicated.Replicas", "number -3"}},
		{"update: body over the limit", "POST", update, strings.Replace(big, `"big"`, `"web"`, 1), 413, []string{"limit of"}},
		{"update: missing service", "POST", "/v1.50/services/nosuch/update?version=1", svc("1"), 404, []string{"nosuch"}},

		// ?version=: stale (409, as dockerd), missing, not a number.
		{"service update: stale version", "POST", fmt.Sprintf("/v1.50/services/web/update?version=%d", svcV0), svc("5"), 409, []string{"update out of sequence"}},
		{"service update: no version", "POST", "/v1.50/services/web/update", svc("5"), 400, []string{"version"}},
		{"service update: version not a number", "POST", "/v1.50/services/web/update?version=latest", svc("5"), 400, []string{`"latest"`}},
		{"node update: stale version", "POST", fmt.Sprintf("/v1.50/nodes/%s/update?version=%d", nodeID, nodeV0), `{"Role":"manager","Availability":"drain"}`, 409, []string{"update out of sequence"}},
		{"node update: no version", "POST", "/v1.50/nodes/" + nodeID + "/update", `{"Role":"manager","Availability":"drain"}`, 400, []string{"version query parameter is required"}},
		{"node update: unknown availability", "POST", fmt.Sprintf("/v1.50/nodes/%s/update?version=%d", nodeID, nodeV), `{"Role":"manager","Availability":"asleep"}`, 400, []string{"asleep"}},
		{"node update: mistyped labels", "POST", fmt.Sprintf("/v1.50/nodes/%s/update?version=%d", nodeID, nodeV), `{"Labels":["zone=b"],"Role":"manager","Availability":"active"}`, 400, []string{"Annotations.Labels", "JSON array"}},
		{"swarm update: stale version, rotating the token", "POST", fmt.Sprintf("/v1.50/swarm/update?version=%d&rotateWorkerToken=true", swarmV0), string(swarmSpec.Spec), 409, []string{"update out of sequence"}},
		{"swarm update: version not a number", "POST", "/v1.50/swarm/update?version=x&rotateWorkerToken=true", string(swarmSpec.Spec), 400, []string{"invalid swarm version 'x'"}},
		{"swarm update: mistyped field", "POST", fmt.Sprintf("/v1.50/swarm/update?version=%d", swarmV), `{"Orchestration":{"TaskHistoryRetentionLimit":"many"}}`, 400, []string{"Orchestration.TaskHistoryRetentionLimit"}},

		// API versions, endpoints, methods.
		{"API version too old", "GET", "/v1.40/services", "", 400, []string{"client version 1.40 is too old", "1.41"}},
		{"API version too new", "GET", "/v1.99/services", "", 400, []string{"client version 1.99 is too new", "1.50"}},
		{"API version too old on a write", "POST", "/v1.24/services/create", svc("1"), 400, []string{"too old"}},
		{"unknown endpoint", "GET", "/v1.50/frobnicate", "", 404, []string{"page not found: GET /frobnicate is not an Engine API endpoint"}},
		{"unknown endpoint, unversioned", "POST", "/services/web/frobnicate", "{}", 404, []string{"page not found: POST /services/web/frobnicate is not"}},
		{"container list", "GET", "/v1.50/containers/json", "", 501, []string{"shoal runs swarm services", "docker service ps"}},
		{"container create", "POST", "/v1.50/containers/create", `{"Image":"busybox"}`, 501, []string{"shoal runs swarm services", "docker service create"}},
		{"image list", "GET", "/v1.41/images/json", "", 501, []string{"local images"}},
		// A wrong method is dockerd's 404, naming the methods the path takes.
		{"GET on POST-only /swarm/init", "GET", "/v1.50/swarm/init", "", 404, []string{"page not found: /swarm/init does not take GET (it takes POST)"}},
		{"PUT on /services", "PUT", "/v1.50/services", svc("1"), 404, []string{"page not found: /services does not take PUT (it takes GET)"}},
		{"DELETE on /swarm", "DELETE", "/v1.50/swarm", "", 404, []string{"/swarm does not take DELETE (it takes GET)"}},
		{"PUT on a service", "PUT", "/v1.50/services/web", svc("1"), 404, []string{"/services/web does not take PUT (it takes GET or DELETE)"}},

		// Filters: bad JSON, unknown keys, bad values.
		{"services: filters not JSON", "GET", "/v1.50/services?filters=" + url.QueryEscape(`{bad`), "", 400, []string{"filters", "{bad"}},
		{"tasks: filters not JSON", "GET", "/v1.50/tasks?filters=" + url.QueryEscape(`{"service":`), "", 400, []string{"filters"}},
		{"nodes: filters of the wrong shape", "GET", "/v1.50/nodes?filters=" + url.QueryEscape(`{"role":5}`), "", 400, []string{`filter "role"`, "values must be"}},
		{"services: unknown filter", "GET", "/v1.50/services?filters=" + url.QueryEscape(`{"colour":{"red":true}}`), "", 400, []string{"invalid filter 'colour'"}},
		{"services: bad mode", "GET", "/v1.50/services?filters=" + url.QueryEscape(`{"mode":{"sometimes":true}}`), "", 400, []string{"mode=sometimes"}},
		{"nodes: bad role", "GET", "/v1.50/nodes?filters=" + url.QueryEscape(`{"role":{"boss":true}}`), "", 400, []string{"role=boss"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := d.api(t, c.method, c.path, c.body)
			var e struct{ Message string }
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Message == "" {
				t.Errorf("%s %s: %d, not a JSON {\"message\"}: %q", c.method, c.path, code, body)
			} else if code != c.code {
				t.Errorf("%s %s: %d (want %d): %s", c.method, c.path, code, c.code, e.Message)
			}
			for _, w := range c.want {
				if e.Message != "" && !strings.Contains(e.Message, w) {
					t.Errorf("%s %s: the message %q lacks %q", c.method, c.path, e.Message, w)
				}
			}
			if after := clusterState(t, d); after != before {
				b, a := strings.Split(before, "\n"), strings.Split(after, "\n")
				for i := range b {
					if i < len(a) && a[i] != b[i] {
						t.Errorf("%s %s changed the cluster:\nbefore %s\nafter  %s", c.method, c.path, b[i], a[i])
					}
				}
				before = after // report each change once
			}
		})
	}
}

// objectVersion is the Version.Index of the object at path.
func objectVersion(t *testing.T, d *daemon, path string) uint64 {
	t.Helper()
	var o struct{ Version struct{ Index uint64 } }
	getJSON(t, d, path, &o)
	if o.Version.Index == 0 {
		t.Fatalf("GET %s: no Version.Index", path)
	}
	return o.Version.Index
}

func getJSON(t *testing.T, d *daemon, path string, v any) {
	t.Helper()
	code, body := d.api(t, "GET", path, "")
	if code != 200 {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, body)
	}
}

// clusterState is what the bad requests must leave alone: every object's
// ID and spec, and the swarm's spec and join tokens. (Versions are left
// out: the manager moves them on its own, e.g. when a service's update
// status completes.)
func clusterState(t *testing.T, d *daemon) string {
	t.Helper()
	type object struct {
		ID   string
		Spec json.RawMessage
	}
	var b strings.Builder
	for _, path := range []string{"/v1.50/services", "/v1.50/nodes", "/v1.50/secrets", "/v1.50/configs"} {
		var objs []object
		getJSON(t, d, path, &objs)
		fmt.Fprintf(&b, "%s %d:", path, len(objs))
		for _, o := range objs {
			fmt.Fprintf(&b, " %s %s;", o.ID, o.Spec)
		}
		b.WriteString("\n")
	}
	var nets []struct{ ID, Name string }
	getJSON(t, d, "/v1.50/networks", &nets)
	fmt.Fprintf(&b, "networks %v\n", nets)
	var sw struct {
		Spec       json.RawMessage
		JoinTokens json.RawMessage
	}
	getJSON(t, d, "/v1.50/swarm", &sw)
	fmt.Fprintf(&b, "swarm %s %s", sw.Spec, sw.JoinTokens)
	return b.String()
}
