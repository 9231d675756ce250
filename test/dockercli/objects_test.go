package dockercli

import (
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/test/lab"
)

// TestDockerCLIObjects: docker node, secret, config, network and events
// against a two-node shoal swarm, checked on what the CLI prints.
func TestDockerCLIObjects(t *testing.T) {
	forEachCLI(t, func(t *testing.T, c cli) {
		m, w := startDaemon(t, c, ""), startDaemon(t, c, "")
		m.mustDocker("swarm", "init", "--listen-addr", m.addr, "--advertise-addr", m.addr)
		start := time.Now().Add(-time.Second)
		token := strings.TrimSpace(m.mustDocker("swarm", "join-token", "-q", "worker"))
		w.mustDocker("swarm", "join", "--token", token, "--listen-addr", w.addr, "--advertise-addr", w.addr, m.addr)
		workerID := strings.TrimSpace(w.mustDocker("info", "--format", "{{.Swarm.NodeID}}"))
		managerID := strings.TrimSpace(m.mustDocker("info", "--format", "{{.Swarm.NodeID}}"))

		// node ls: both nodes, the manager as Leader, the worker Ready.
		testutil.EventuallyErr(t, 30*time.Second, 200*time.Millisecond, func() error {
			out := m.mustDocker("node", "ls", "--format", "{{.ID}} {{.Status}} {{.Availability}} {{.ManagerStatus}}")
			for _, l := range []string{managerID + " Ready Active Leader", workerID + " Ready Active"} {
				if !slices.Contains(strings.Split(strings.TrimSpace(out), "\n"), l) && !slices.Contains(strings.Split(out, "\n"), l+" ") {
					return &lineErr{l, out}
				}
			}
			return nil
		}, "docker node ls shows the leader and the ready worker")
		out := m.mustDocker("node", "ls")
		if !regexp.MustCompile(`(?m)^` + managerID + ` \*\s+\S+\s+Ready\s+Active\s+Leader`).MatchString(out) {
			t.Errorf("docker node ls does not mark the manager as this node and leader:\n%s", out)
		}
		if out := m.mustDocker("node", "ls", "--filter", "role=worker", "-q"); strings.TrimSpace(out) != workerID {
			t.Errorf("node ls --filter role=worker: %q, want %s", out, workerID)
		}
		if out, err := m.docker("node", "ls", "--filter", "colour=blue"); err == nil || !strings.Contains(out, "invalid filter 'colour'") {
			t.Errorf("node ls with a bad filter: %v\n%s", err, out)
		}

		// A worker refuses with docker's words.
		if out, err := w.docker("node", "ls"); err == nil || !strings.Contains(out, "Worker nodes can't be used to view or modify cluster state") {
			t.Errorf("node ls on a worker: %v\n%s", err, out)
		}

		// node update --label-add, inspect (also --pretty), promote, demote.
		m.mustDocker("node", "update", "--label-add", "zone=a", workerID)
		if out := m.mustDocker("node", "inspect", "--format", "{{index .Spec.Labels \"zone\"}} {{.Spec.Role}}", workerID); strings.TrimSpace(out) != "a worker" {
			t.Errorf("node inspect after --label-add: %q", out)
		}
		if out := m.mustDocker("node", "ls", "--filter", "node.label=zone=a", "-q"); strings.TrimSpace(out) != workerID {
			t.Errorf("node ls --filter node.label=zone=a: %q", out)
		}
		pretty := m.mustDocker("node", "inspect", "--pretty", workerID)
		wantLines(t, "node inspect --pretty", pretty, "ID:			"+workerID, "Status:", "Availability:         	Active", "- zone=a")
		if !strings.Contains(m.mustDocker("node", "inspect", "--format", "{{.Description.TLSInfo.TrustRoot}}", managerID), "BEGIN CERTIFICATE") {
			t.Errorf("node inspect has no TLS trust root")
		}
		if out := m.mustDocker("node", "promote", workerID); !strings.Contains(out, "promoted to a manager") {
			t.Errorf("node promote: %s", out)
		}
		if out := m.mustDocker("node", "inspect", "--format", "{{.Spec.Role}}", workerID); strings.TrimSpace(out) != "manager" {
			t.Errorf("role after promote: %q", out)
		}
		testutil.EventuallyErr(t, 30*time.Second, 200*time.Millisecond, func() error {
			out := m.mustDocker("node", "inspect", "--format", "{{if .ManagerStatus}}{{.ManagerStatus.Reachability}}{{end}}", workerID)
			if strings.TrimSpace(out) != "reachable" {
				return &lineErr{"reachable", out}
			}
			return nil
		}, "the promoted node is a reachable manager")
		if out := m.mustDocker("node", "demote", workerID); !strings.Contains(out, "demoted in the swarm") {
			t.Errorf("node demote: %s", out)
		}

		// secrets and configs.
		secretID := strings.TrimSpace(m.mustDockerIn("s3cr3t", "secret", "create", "--label", "app=web", "dbpass", "-"))
		if len(secretID) < 10 {
			t.Fatalf("secret create printed %q", secretID)
		}
		out = m.mustDocker("secret", "ls", "--format", "{{.ID}} {{.Name}}")
		wantLines(t, "secret ls", out, secretID+" dbpass")
		if out := m.mustDocker("secret", "ls", "-q", "--filter", "label=app=web"); strings.TrimSpace(out) != secretID {
			t.Errorf("secret ls --filter label=app=web: %q", out)
		}
		if out := m.mustDocker("secret", "ls", "-q", "--filter", "name=nomatch"); strings.TrimSpace(out) != "" {
			t.Errorf("secret ls --filter name=nomatch: %q", out)
		}
		out = m.mustDocker("secret", "inspect", "--format", "{{.Spec.Name}} {{.Spec.Labels}} {{.Spec.Data}}", "dbpass")
		if strings.TrimSpace(out) != "dbpass map[app:web] []" {
			t.Errorf("secret inspect (no data back): %q", out)
		}
		// The docker CLI has no `secret update`; the SDK's SecretUpdate sends this.
		version := strings.TrimSpace(m.mustDocker("secret", "inspect", "--format", "{{.Version.Index}}", "dbpass"))
		code, body := m.api(t, "POST", "/v1.50/secrets/"+secretID+"/update?version="+version, `{"Name":"dbpass","Labels":{"app":"api"}}`)
		if code != 200 {
			t.Errorf("POST /secrets/{id}/update: %d %s", code, body)
		}
		if out := m.mustDocker("secret", "inspect", "--format", "{{.Spec.Labels}}", "dbpass"); strings.TrimSpace(out) != "map[app:api]" {
			t.Errorf("secret labels after update: %q", out)
		}
		code, body = m.api(t, "POST", "/v1.50/secrets/"+secretID+"/update?version="+version, `{"Name":"dbpass","Labels":{"app":"old"}}`)
		if code != 409 || !strings.Contains(body, "update out of sequence") {
			t.Errorf("secret update with a stale version: %d %s", code, body)
		}
		if out := m.mustDocker("secret", "rm", "dbpass"); strings.TrimSpace(out) != "dbpass" {
			t.Errorf("secret rm: %q", out)
		}
		// docker 28 prints the daemon's 404 message; 20.10 its own words for a 404.
		if out, err := m.docker("secret", "inspect", "dbpass"); err == nil || !strings.Contains(out, "not found") && !strings.Contains(out, "No such secret: dbpass") {
			t.Errorf("secret inspect after rm: %v\n%s", err, out)
		}

		configID := strings.TrimSpace(m.mustDockerIn("listen 80;\n", "config", "create", "nginx.conf", "-"))
		wantLines(t, "config ls", m.mustDocker("config", "ls", "--format", "{{.ID}} {{.Name}}"), configID+" nginx.conf")
		out = m.mustDocker("config", "inspect", "--pretty", "nginx.conf")
		wantLines(t, "config inspect --pretty", out, "ID:\t\t\t"+configID, "Name:\t\t\tnginx.conf", "listen 80;")
		if out := m.mustDocker("config", "rm", configID[:6]); strings.TrimSpace(out) != configID[:6] {
			t.Errorf("config rm by prefix: %q", out)
		}
		if out := m.mustDocker("config", "ls", "-q"); strings.TrimSpace(out) != "" {
			t.Errorf("config ls after rm: %q", out)
		}

		// networks.
		netID := strings.TrimSpace(m.mustDocker("network", "create", "-d", "overlay", "--label", "tier=back", "backnet"))
		out = m.mustDocker("network", "ls", "--format", "{{.ID}} {{.Name}} {{.Driver}} {{.Scope}}")
		wantLines(t, "network ls", out, netID[:12]+" backnet overlay swarm")
		if out := m.mustDocker("network", "ls", "-q", "--no-trunc", "--filter", "label=tier=back"); strings.TrimSpace(out) != netID {
			t.Errorf("network ls --filter label: %q", out)
		}
		out = m.mustDocker("network", "inspect", "--format", "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels}}", "backnet")
		if strings.TrimSpace(out) != "backnet overlay swarm map[tier:back]" {
			t.Errorf("network inspect: %q", out)
		}
		if out, err := m.docker("network", "create", "-d", "bridge", "local1"); err == nil || !strings.Contains(out, "overlay") {
			t.Errorf("network create -d bridge: %v\n%s", err, out)
		}
		if out := m.mustDocker("network", "rm", "backnet"); strings.TrimSpace(out) != "backnet" {
			t.Errorf("network rm: %q", out)
		}
		if out := m.mustDocker("network", "ls", "-q", "--filter", "name=backnet"); strings.TrimSpace(out) != "" {
			t.Errorf("network ls after rm: %q", out)
		}

		// events: a service made through shoal's CLI shows up in the
		// manager's event stream.
		shoal := lab.BuildShoal(t)
		cmd := exec.Command(shoal, "-H", "unix://"+filepath.Join(m.dir, "ctl.sock"), "service", "create", "-d", "--no-resolve-image", "--name", "evsvc", "busybox:latest", "sleep", "600")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("shoal service create: %v\n%s", err, b)
		}
		until := strconv.FormatInt(time.Now().Add(2*time.Second).Unix(), 10)
		out = m.mustDocker("events", "--filter", "type=service", "--since", strconv.FormatInt(start.Unix(), 10), "--until", until)
		if !regexp.MustCompile(`(?m)^\S+ service create \w+ \(name=evsvc\)$`).MatchString(out) {
			t.Errorf("docker events --filter type=service lacks the service create:\n%s", out)
		}
		if strings.Contains(out, " node ") || strings.Contains(out, " secret ") {
			t.Errorf("docker events --filter type=service shows other types:\n%s", out)
		}

		// node rm: the worker leaves, then is removed.
		// The demoted node first finishes stepping down (until then shoal
		// refuses a leave as "joining or leaving").
		testutil.EventuallyErr(t, 60*time.Second, 500*time.Millisecond, func() error {
			out, err := w.docker("swarm", "leave")
			if err != nil {
				return &lineErr{"Node left the swarm.", out}
			}
			return nil
		}, "the demoted worker leaves the swarm")
		testutil.EventuallyErr(t, 60*time.Second, 500*time.Millisecond, func() error {
			out := m.mustDocker("node", "inspect", "--format", "{{.Status.State}}", workerID)
			if strings.TrimSpace(out) != "down" {
				return &lineErr{"down", out}
			}
			return nil
		}, "the worker that left is down")
		if out := m.mustDocker("node", "rm", workerID); strings.TrimSpace(out) != workerID {
			t.Errorf("node rm: %q", out)
		}
		if out := m.mustDocker("node", "ls", "-q"); strings.TrimSpace(out) != managerID {
			t.Errorf("node ls after rm: %q", out)
		}
	})
}

type lineErr struct{ want, out string }

func (e *lineErr) Error() string { return "want " + strconv.Quote(e.want) + " in:\n" + e.out }

// api sends one request to the Engine API socket.
func (d *daemon) api(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", d.dockerSocket())
	}}}
	req, err := http.NewRequest(method, "http://docker"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// mustDockerIn runs the docker CLI with stdin.
func (d *daemon) mustDockerIn(stdin string, args ...string) string {
	d.t.Helper()
	cmd := exec.Command(d.cli.path, append([]string{"-H", "unix://" + d.dockerSocket()}, args...)...)
	cmd.Env = d.dockerEnv
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		d.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// dockerPyObjectsScript drives nodes, secrets, configs, networks and
// events with docker-py, whose filters are lists ({"k":["v"]}).
const dockerPyObjectsScript = `
import sys, time, docker
c = docker.DockerClient(base_url="unix://" + sys.argv[1], version="auto", timeout=60)
start = int(time.time()) - 1
c.swarm.init(listen_addr=sys.argv[2], advertise_addr=sys.argv[2])
nodes = c.nodes.list(filters={"role": "manager"})
print("managers", len(nodes))
n = nodes[0]
spec = n.attrs["Spec"]
spec["Labels"] = {"zone": "b"}
print("node update", n.update(spec))
print("node labels", c.nodes.list(filters={"node.label": "zone=b"})[0].attrs["Spec"]["Labels"])
s = c.secrets.create(name="pysecret", data=b"hunter2", labels={"app": "web"})
print("secrets", [x.name for x in c.secrets.list(filters={"label": "app=web"})])
cfg = c.configs.create(name="pyconfig", data=b"a=1")
print("config data", c.configs.get(cfg.id).attrs["Spec"]["Data"])
net = c.networks.create("pynet", driver="overlay", labels={"k": "v"})
print("networks", [x.name for x in c.networks.list(filters={"driver": "overlay", "label": "k=v"})])
s.remove(); cfg.remove(); net.remove()
print("left", len(c.secrets.list()), len(c.configs.list()), len(c.networks.list(names=["pynet"])))
evs = [e for e in c.events(since=start, until=int(time.time()) + 1, decode=True, filters={"type": ["network", "secret"]})]
print("events", sorted(set(e["Type"] + " " + e["Action"] for e in evs)))
`

// TestDockerPyObjects: docker-py on nodes, secrets, configs, networks and
// events.
func TestDockerPyObjects(t *testing.T) {
	if err := exec.Command(python, "-c", "import docker").Run(); err != nil {
		if testutil.Strict() {
			t.Fatalf("docker-py is not installed (apt-get install python3-docker): %v", err)
		}
		t.Skipf("docker-py is not installed: %v", err)
	}
	d := startDaemon(t, docker28, "")
	out, err := exec.Command(python, "-c", dockerPyObjectsScript, d.dockerSocket(), d.addr).CombinedOutput()
	if err != nil {
		t.Fatalf("docker-py: %v\n%s", err, out)
	}
	wantLines(t, "docker-py", string(out), "managers 1", "node update True", "node labels {'zone': 'b'}", "secrets ['pysecret']",
		"config data YT0x", "networks ['pynet']", "left 0 0 0",
		"events ['network create', 'network remove', 'secret create', 'secret remove']")
}
