package dockercli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/test/images"
	"github.com/shoal-project/shoal/test/lab"
)

// requireDocker28 fails (SHOAL_TEST_ROOT=1) or skips the test when the
// docker 28.2 CLI is not at docker28.path: the comparisons below are with
// what that version prints.
func requireDocker28(t *testing.T) {
	t.Helper()
	out, err := exec.Command(docker28.path, "--version").CombinedOutput()
	if err == nil && !strings.HasPrefix(string(out), "Docker version 28.") {
		err = fmt.Errorf("it is %q", strings.TrimSpace(string(out)))
	}
	if err == nil {
		return
	}
	if testutil.Strict() {
		t.Fatalf("the docker 28 CLI at %s is not usable (%v): build it with `go build -o /usr/local/bin/docker github.com/docker/cli/cmd/docker` at v28.2.2+incompatible", docker28.path, err)
	}
	t.Skipf("the docker 28 CLI at %s is not usable: %v", docker28.path, err)
}

// result is one CLI run: stdout and stderr apart, and the exit status.
type result struct {
	stdout, stderr string
	code           int
}

// run runs bin with args and env (nil: the test's own), stdin empty and
// stdout and stderr pipes (no terminal), for at most two minutes. The
// one runner of the package's CLI comparisons.
func run(t *testing.T, env []string, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		t.Fatalf("%s %s did not end within 2 minutes", bin, strings.Join(args, " "))
	}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%s %s: %v", bin, strings.Join(args, " "), err)
		}
		r.code = ee.ExitCode()
	}
	return r
}

// pair runs the same command through docker (against the Engine API) and
// through shoal (against the control socket of the same daemon).
type pair struct {
	t     *testing.T
	d     *daemon
	shoal string
}

func (p pair) docker(args ...string) result {
	p.t.Helper()
	return run(p.t, p.d.dockerEnv, p.d.cli.path, append([]string{"-H", "unix://" + p.d.dockerSocket()}, args...)...)
}

func (p pair) shoalRun(args ...string) result {
	p.t.Helper()
	return run(p.t, nil, p.shoal, append([]string{"-H", "unix://" + filepath.Join(p.d.dir, "ctl.sock")}, args...)...)
}

// same checks that docker and shoal print the same bytes for args, both
// succeeding; it returns docker's output.
func (p pair) same(args ...string) string {
	p.t.Helper()
	dr, sr := p.docker(args...), p.shoalRun(args...)
	if dr.code != 0 || sr.code != 0 {
		p.t.Errorf("%s: docker exited %d (%s), shoal %d (%s)", strings.Join(args, " "), dr.code, dr.stderr, sr.code, sr.stderr)
		return dr.stdout
	}
	if dr.stdout != sr.stdout {
		p.t.Errorf("%s: docker and shoal differ:\n%s", strings.Join(args, " "), lineDiff(dr.stdout, sr.stdout))
	}
	return dr.stdout
}

// sameJSON checks that `X inspect REF` prints the same JSON through both
// CLIs: parsed (so a difference is reported by value) and byte for byte.
func (p pair) sameJSON(args ...string) {
	p.t.Helper()
	dr, sr := p.docker(args...), p.shoalRun(args...)
	if dr.code != 0 || sr.code != 0 {
		p.t.Errorf("%s: docker exited %d (%s), shoal %d (%s)", strings.Join(args, " "), dr.code, dr.stderr, sr.code, sr.stderr)
		return
	}
	var dv, sv any
	if err := json.Unmarshal([]byte(dr.stdout), &dv); err != nil {
		p.t.Fatalf("docker %s: not JSON: %v\n%s", strings.Join(args, " "), err, dr.stdout)
	}
	if err := json.Unmarshal([]byte(sr.stdout), &sv); err != nil {
		p.t.Errorf("shoal %s: not JSON: %v\n%s", strings.Join(args, " "), err, sr.stdout)
		return
	}
	if !reflect.DeepEqual(dv, sv) {
		p.t.Errorf("%s: the JSON differs by value", strings.Join(args, " "))
	}
	if dr.stdout != sr.stdout {
		p.t.Errorf("%s: docker and shoal print different bytes:\n%s", strings.Join(args, " "), lineDiff(dr.stdout, sr.stdout))
	}
}

// samePretty checks `X inspect --pretty REF` line by line; lines starting
// with a prefix of skip (its value says why) are left out of the
// comparison.
func (p pair) samePretty(skip map[string]string, args ...string) {
	p.t.Helper()
	dr, sr := p.docker(args...), p.shoalRun(args...)
	if dr.code != 0 || sr.code != 0 {
		p.t.Errorf("%s: docker exited %d (%s), shoal %d (%s)", strings.Join(args, " "), dr.code, dr.stderr, sr.code, sr.stderr)
		return
	}
	keep := func(s string) string {
		var out []string
		for _, l := range strings.SplitAfter(s, "\n") {
			skipped := false
			for prefix := range skip {
				if strings.HasPrefix(l, prefix) {
					skipped = true
				}
			}
			if !skipped {
				out = append(out, l)
			}
		}
		return strings.Join(out, "")
	}
	if keep(dr.stdout) != keep(sr.stdout) {
		p.t.Errorf("%s: docker and shoal differ:\n%s", strings.Join(args, " "), lineDiff(keep(dr.stdout), keep(sr.stdout)))
	}
	if !strings.Contains(dr.stdout, "\n") {
		p.t.Errorf("%s: docker printed %q", strings.Join(args, " "), dr.stdout)
	}
}

// lineDiff shows the lines where a (docker) and b (shoal) differ, with
// tabs and trailing spaces visible.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out strings.Builder
	shown := 0
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y && shown < 20 {
			fmt.Fprintf(&out, "line %d:\n  docker: %q\n  shoal:  %q\n", i+1, x, y)
			shown++
		}
	}
	if len(al) != len(bl) {
		fmt.Fprintf(&out, "docker printed %d lines, shoal %d: the ends are %q and %q\n", len(al), len(bl), tail(a), tail(b))
	}
	return out.String()
}

func tail(s string) string {
	if len(s) > 40 {
		return s[len(s)-40:]
	}
	return s
}

// TestInspectSameAsDocker: for a service with replicas, labels, a
// published port, constraints, a mount, a secret, a config, a network and
// an update config, after an update; for the node, the secret, the config
// and the network: `docker X inspect` and `shoal X inspect` print the same
// JSON, the same --format results for a list of templates, and the same
// --pretty output except for the lines listed with their reason.
func TestInspectSameAsDocker(t *testing.T) {
	requireDocker28(t)
	reg := images.StartRegistry(t)
	busybox := images.PushTest(t, reg, images.Busybox)
	d := startDaemon(t, docker28, "")
	d.mustDocker("swarm", "init", "--listen-addr", d.addr, "--advertise-addr", d.addr)
	p := pair{t: t, d: d, shoal: lab.BuildShoal(t)}

	d.mustDocker("network", "create", "-d", "overlay", "--label", "team=web", "backnet")
	d.mustDockerIn("s3cret\n", "secret", "create", "--label", "env=test", "db_pass", "-")
	d.mustDockerIn("events {}\n", "config", "create", "--label", "kind=nginx", "nginx_conf", "-")
	d.mustDocker("service", "create", "-d", "--name", "web", "--replicas", "2", "--no-resolve-image",
		"--label", "tier=front", "--label", "com.example.owner=ops", "--publish", "8080:80",
		"--constraint", "node.role==manager", "--placement-pref", "spread=node.labels.zone",
		"--mount", "type=volume,source=webdata,target=/data", "--secret", "db_pass", "--config", "source=nginx_conf,target=/etc/nginx.conf",
		"--network", "backnet", "--env", "MODE=prod", "--limit-cpu", "0.5", "--limit-memory", "64M",
		"--update-parallelism", "1", "--update-delay", "1s", "--update-monitor", "2s", "--update-order", "start-first",
		"--rollback-monitor", "3s", "--log-driver", "json-file", "--log-opt", "max-size=10m",
		busybox, "sh", "-c", "sleep 3600")
	converged := func(what string) {
		t.Helper()
		testutil.EventuallyErr(t, 90*time.Second, 250*time.Millisecond, func() error {
			out, err := d.docker("service", "ls", "--format", "{{.Name}} {{.Replicas}}")
			if err != nil || strings.TrimSpace(out) != "web 2/2" {
				return fmt.Errorf("service ls: %q (%v)", out, err)
			}
			return nil
		}, "web runs 2/2 (%s)", what)
	}
	converged("created")
	d.mustDocker("service", "update", "-d", "--env-add", "STEP=2", "web")
	testutil.EventuallyErr(t, 90*time.Second, 250*time.Millisecond, func() error {
		out, err := d.docker("service", "inspect", "--format", "{{.UpdateStatus.State}}", "web")
		if err != nil || strings.TrimSpace(out) != "completed" {
			return fmt.Errorf("UpdateStatus.State: %q (%v)", out, err)
		}
		return nil
	}, "the update completes")
	converged("updated")

	// Services with docker's defaults only: no replicas, a global one and
	// a job (their --pretty "Service Mode" lines differ).
	d.mustDocker("service", "create", "-d", "--name", "idle", "--replicas", "0", "--no-resolve-image", busybox, "true")
	d.mustDocker("service", "create", "-d", "--name", "everywhere", "--mode", "global", "--no-resolve-image", busybox, "sleep", "3600")
	d.mustDocker("service", "create", "-d", "--name", "once", "--mode", "replicated-job", "--no-resolve-image", busybox, "true")

	// The JSON, byte for byte (docker indents with four spaces), and as
	// one line with --format json.
	for _, args := range [][]string{
		{"service", "inspect", "web"},
		{"service", "inspect", "--format", "json", "web"},
		{"node", "inspect", "self"},
		{"secret", "inspect", "db_pass"},
		{"config", "inspect", "nginx_conf"},
		{"network", "inspect", "backnet"},
		{"service", "inspect", "idle", "everywhere", "once", "web"},
	} {
		p.sameJSON(args...)
	}

	templates := map[string][]string{
		"service": {
			"{{.ID}}", "{{.Spec.Name}} {{.Spec.Mode.Replicated.Replicas}}", "{{.UpdateStatus.State}}",
			"{{json .Spec.Labels}}", `{{index .Spec.Labels "tier"}}`,
			"{{range .Endpoint.Ports}}{{.PublishedPort}}->{{.TargetPort}}/{{.Protocol}} {{.PublishMode}};{{end}}",
			"{{json .Spec.TaskTemplate.Placement}}", "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
			`{{join .Spec.TaskTemplate.ContainerSpec.Args " "}}`, "{{lower .Spec.Name}} {{upper .Spec.Name}} {{title .Spec.Name}}",
			`{{split .Spec.TaskTemplate.ContainerSpec.Image ":"}}`, "{{pad .Spec.Name 2 3}}|", "{{truncate .ID 12}}",
			"{{println .Spec.Name}}", "{{.Spec.UpdateConfig.Parallelism}} {{.Spec.UpdateConfig.Delay}} {{.Spec.UpdateConfig.Monitor}} {{.Spec.UpdateConfig.Order}}",
			"{{range .Spec.TaskTemplate.ContainerSpec.Mounts}}{{.Type}} {{.Source}} {{.Target}}{{end}}",
			"{{.CreatedAt}} {{.Version.Index}}", "{{json .Spec.TaskTemplate.Resources}}", "{{len .Endpoint.VirtualIPs}}",
			"{{range .Spec.TaskTemplate.ContainerSpec.Secrets}}{{.SecretName}} {{.File.Name}}{{end}}",
			"{{json .PreviousSpec.TaskTemplate.ContainerSpec.Env}}", "{{.Spec.TaskTemplate.LogDriver.Name}}",
		},
		"node": {
			"{{.ID}} {{.Description.Hostname}} {{.Status.Addr}} {{.Status.State}}", "{{.Spec.Role}} {{.Spec.Availability}}",
			"{{.ManagerStatus.Leader}} {{.ManagerStatus.Reachability}} {{.ManagerStatus.Addr}}",
			"{{.Description.Platform.Architecture}} {{.Description.Platform.OS}}", "{{json .Description.TLSInfo}}",
			"{{.Description.Engine.EngineVersion}}", "{{range .Description.Engine.Plugins}}{{.Type}}={{.Name}} {{end}}",
		},
		"secret":  {"{{.ID}} {{.Spec.Name}} {{json .Spec.Labels}}", "{{.Version.Index}} {{.CreatedAt}}"},
		"config":  {"{{.Spec.Name}} {{printf \"%s\" .Spec.Data}}", "{{json .Spec.Labels}}"},
		"network": {"{{.Id}} {{.Name}} {{.Driver}} {{.Scope}} {{.Created}}", "{{json .Labels}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}", "{{json .Options}}"},
	}
	refs := map[string]string{"service": "web", "node": "self", "secret": "db_pass", "config": "nginx_conf", "network": "backnet"}
	for kind, list := range templates {
		for _, tmpl := range list {
			p.same(kind, "inspect", "--format", tmpl, refs[kind])
		}
	}

	// --pretty: the same, but for ages (the two commands run a moment
	// apart, so "3 seconds ago" may be "4 seconds ago").
	ages := map[string]string{" Started:": "an age", " Completed:": "an age"}
	p.samePretty(ages, "service", "inspect", "--pretty", "web")
	p.samePretty(ages, "service", "inspect", "--pretty", "idle", "everywhere", "once")
	p.same("service", "inspect", "--format", "{{.Spec.Name}} {{json .Spec.Mode}} {{.Spec.UpdateConfig}}", "idle", "everywhere", "once")
	// A ref that does not exist: the others are still printed, and both
	// exit 1.
	for _, args := range [][]string{
		{"service", "inspect", "idle", "nope"},
		{"service", "inspect", "--format", "{{.ID}}", "nope", "idle"},
		{"node", "inspect", "self", "nope"},
		{"secret", "inspect", "nope"},
		{"config", "inspect", "--format", "{{.ID}}", "nope"},
		{"network", "inspect", "backnet", "nope"},
	} {
		dr, sr := p.docker(args...), p.shoalRun(args...)
		if dr.code != 1 || sr.code != 1 || dr.stdout != sr.stdout {
			t.Errorf("%s: docker exited %d, shoal %d; stdout:\n%s", strings.Join(args, " "), dr.code, sr.code, lineDiff(dr.stdout, sr.stdout))
		}
	}
	p.samePretty(nil, "node", "inspect", "--pretty", "self")
	p.samePretty(nil, "secret", "inspect", "--pretty", "db_pass")
	p.samePretty(nil, "config", "inspect", "--pretty", "nginx_conf")
}
