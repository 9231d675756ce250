package dockercli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/test/images"
	"github.com/shoal-project/shoal/test/lab"
)

// shoal runs the shoal CLI against the daemon's control socket.
func (d *daemon) shoal(args ...string) (string, error) {
	bin := lab.BuildShoal(d.t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-H", "unix://" + filepath.Join(d.dir, "ctl.sock")}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (d *daemon) mustShoal(args ...string) string {
	d.t.Helper()
	out, err := d.shoal(args...)
	if err != nil {
		d.t.Fatalf("shoal %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// pushTag pushes the named test image under REGISTRY/shoal/NAME:tag.
func pushTag(t *testing.T, reg, name, tag string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	img, err := images.Build(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg + "/shoal/" + name + ":" + tag
	if err := images.Push(ctx, img, ref, true); err != nil {
		t.Fatal(err)
	}
	return ref
}

// waitService waits until `docker service ls` shows the service with the
// replicas (e.g. "2/2").
func waitService(t *testing.T, d *daemon, name, replicas string) {
	t.Helper()
	testutil.EventuallyErr(t, 60*time.Second, 250*time.Millisecond, func() error {
		out, err := d.docker("service", "ls", "--filter", "name="+name, "--format", "{{.Name}} {{.Replicas}}")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if got := strings.TrimSpace(out); got != name+" "+replicas {
			return fmt.Errorf("docker service ls shows %q", got)
		}
		return nil
	}, "docker service ls shows %s %s", name, replicas)
}

// converged checks the converge display of an attached docker service
// create or update: the progress line with n of n tasks, and the CLI's
// verification line (docker 20.10: "verify: Service converged"; docker 28
// names the service: "verify: Service <name or ID> converged").
func converged(t *testing.T, c cli, what, out string, n int) {
	t.Helper()
	if !strings.Contains(out, fmt.Sprintf("overall progress: %d out of %d tasks", n, n)) {
		t.Errorf("%s does not show all %d tasks running:\n%s", what, n, out)
	}
	verify := `(?m)^verify: Service \S+ converged\s*$`
	if c == docker2010 {
		verify = `(?m)^verify: Service converged\s*$`
	}
	if !regexp.MustCompile(verify).MatchString(out) {
		t.Errorf("%s does not end with docker %s's %q:\n%s", what, c.name, verify, out)
	}
}

// TestDockerCLIAttachedService: docker service create and update without
// -d follow the service with the converge display and return once it has
// converged; the update rolls the tasks to the other image.
func TestDockerCLIAttachedService(t *testing.T) {
	forEachCLI(t, func(t *testing.T, c cli) {
		reg := images.StartRegistry(t)
		busybox := images.PushTest(t, reg, images.Busybox)
		other := pushTag(t, reg, images.Busybox, "other")
		d := startDaemon(t, c, "")
		d.mustDocker("swarm", "init", "--listen-addr", d.addr, "--advertise-addr", d.addr)

		// sleep ignores SIGTERM as PID 1: a short grace period keeps the
		// rolling update quick.
		start := time.Now()
		out := d.mustDocker("service", "create", "--name", "att", "--replicas", "2", "--no-resolve-image", "--stop-grace-period", "1s", busybox)
		t.Logf("attached create took %v:\n%s", time.Since(start).Round(time.Millisecond), out)
		converged(t, c, "docker service create (attached)", out, 2)
		id := strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
		if !regexp.MustCompile(`^[0-9a-z]{25}$`).MatchString(id) {
			t.Errorf("attached create does not print the service ID first:\n%s", out)
		}
		// Returned once converged: both tasks run now, not later.
		if out := d.mustDocker("service", "ls", "--format", "{{.Name}} {{.Replicas}}"); strings.TrimSpace(out) != "att 2/2" {
			t.Errorf("docker service ls right after the attached create: %q", out)
		}

		start = time.Now()
		out = d.mustDocker("service", "update", "--image", other, "--no-resolve-image", "att")
		t.Logf("attached update took %v:\n%s", time.Since(start).Round(time.Millisecond), out)
		if !strings.HasPrefix(out, "att\n") {
			t.Errorf("attached update does not print the service name first:\n%s", out)
		}
		converged(t, c, "docker service update --image (attached)", out, 2)
		if out := d.mustDocker("service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", "att"); strings.TrimSpace(out) != other {
			t.Errorf("image after the update: %q, want %s", out, other)
		}
		out = d.mustDocker("service", "ps", "--filter", "desired-state=running", "--format", "{{.Name}} {{.Image}} {{.CurrentState}}", "att")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			t.Errorf("docker service ps att (running): want 2 tasks:\n%s", out)
		}
		for _, l := range lines {
			if !regexp.MustCompile(`^att\.[12] ` + regexp.QuoteMeta(other) + ` Running `).MatchString(l) {
				t.Errorf("a running task is not on %s: %q", other, l)
			}
		}
		out = d.mustDocker("service", "ps", "--filter", "desired-state=shutdown", "--format", "{{.Image}}", "att")
		if n := strings.Count(out, busybox+"\n"); n != 2 {
			t.Errorf("docker service ps att (shutdown): want the 2 old tasks on %s:\n%s", busybox, out)
		}
		d.mustDocker("service", "rm", "att")
	})
}

// inspectSpec is the Spec of `shoal service inspect`, as JSON values.
func inspectSpec(t *testing.T, d *daemon, name string) map[string]any {
	t.Helper()
	var svcs []map[string]any
	out := d.mustShoal("service", "inspect", name)
	if err := json.Unmarshal([]byte(out), &svcs); err != nil || len(svcs) != 1 {
		t.Fatalf("shoal service inspect %s: %v\n%s", name, err, out)
	}
	spec, ok := svcs[0]["Spec"].(map[string]any)
	if !ok {
		spec, ok = svcs[0]["spec"].(map[string]any)
	}
	if !ok {
		t.Fatalf("shoal service inspect %s has no Spec:\n%s", name, out)
	}
	return spec
}

// withoutEnv returns the spec's JSON with the container's Env taken out,
// for comparing two specs on everything else.
func withoutEnv(t *testing.T, spec map[string]any, task, container, env string) (string, any) {
	t.Helper()
	b, _ := json.Marshal(spec)
	var cp map[string]any
	_ = json.Unmarshal(b, &cp)
	tt, _ := cp[task].(map[string]any)
	cs, _ := tt[container].(map[string]any)
	if cs == nil {
		t.Fatalf("spec has no %s.%s: %s", task, container, b)
	}
	e := cs[env]
	delete(cs, env)
	out, _ := json.MarshalIndent(cp, "", " ")
	return string(out), e
}

// envSet is a printed list ("[B=2 A=1]") sorted: "A=1 B=2".
func envSet(s string) string {
	f := strings.Fields(strings.Trim(strings.TrimSpace(s), "[]"))
	sort.Strings(f)
	return strings.Join(f, " ")
}

// dockerSpec is `docker service inspect`'s Spec as JSON values.
func dockerSpec(t *testing.T, d *daemon, name string) map[string]any {
	t.Helper()
	var spec map[string]any
	out := d.mustDocker("service", "inspect", "--format", "{{json .Spec}}", name)
	if err := json.Unmarshal([]byte(out), &spec); err != nil {
		t.Fatalf("docker service inspect %s: %v\n%s", name, err, out)
	}
	return spec
}

// shoalReplicas waits until `shoal service ls` shows the service with the
// replicas (e.g. "2/2").
func shoalReplicas(t *testing.T, d *daemon, name, replicas string) {
	t.Helper()
	testutil.EventuallyErr(t, 60*time.Second, 250*time.Millisecond, func() error {
		out, err := d.shoal("service", "ls", "--filter", "name="+name, "--format", "{{.Name}} {{.Replicas}}")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if got := strings.TrimSpace(out); got != name+" "+replicas {
			return fmt.Errorf("shoal service ls shows %q", got)
		}
		return nil
	}, "shoal service ls shows %s %s", name, replicas)
}

// TestDockerCLIMixedUse: a service made by docker is seen, updated,
// scaled and removed by the shoal CLI against the same shoald, and one
// made by shoal is by docker; each side sees the other's changes, and a
// docker update of a shoal service keeps every setting it did not change,
// also those Docker's JSON cannot carry (masquerade, static addresses).
func TestDockerCLIMixedUse(t *testing.T) {
	forEachCLI(t, func(t *testing.T, c cli) {
		reg := images.StartRegistry(t)
		busybox := images.PushTest(t, reg, images.Busybox)
		d := startDaemon(t, c, "")
		d.mustDocker("swarm", "init", "--listen-addr", d.addr, "--advertise-addr", d.addr)

		// docker -> shoal.
		d.mustDocker("service", "create", "-d", "--name", "dk", "--env", "A=1", "--label", "made=docker", "--stop-grace-period", "1s",
			"--update-order", "start-first", "--restart-max-attempts", "4", "--no-resolve-image", busybox)
		shoalReplicas(t, d, "dk", "1/1")
		before := dockerSpec(t, d, "dk")
		spec := inspectSpec(t, d, "dk")
		if b, _ := json.Marshal(spec); !strings.Contains(string(b), `"made":"docker"`) || !strings.Contains(string(b), `"A=1"`) {
			t.Errorf("shoal service inspect dk lacks docker's label or env: %s", b)
		}
		d.mustShoal("service", "update", "-d", "--env-add", "B=2", "dk")
		if out := d.mustDocker("service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Env}}", "dk"); envSet(out) != "A=1 B=2" {
			t.Errorf("docker sees env %q after shoal's update, want [A=1 B=2]", out)
		}
		after := dockerSpec(t, d, "dk")
		b1, e1 := withoutEnv(t, before, "TaskTemplate", "ContainerSpec", "Env")
		b2, e2 := withoutEnv(t, after, "TaskTemplate", "ContainerSpec", "Env")
		if b1 != b2 {
			t.Errorf("shoal service update --env-add changed more than Env (%v -> %v) of a docker service:\nbefore %s\nafter  %s", e1, e2, b1, b2)
		}
		d.mustShoal("service", "scale", "-d", "dk=2")
		waitService(t, d, "dk", "2/2")
		if out := d.mustShoal("service", "rm", "dk"); strings.TrimSpace(out) != "dk" {
			t.Errorf("shoal service rm dk: %q", out)
		}
		if out := d.mustDocker("service", "ls", "-q"); strings.TrimSpace(out) != "" {
			t.Errorf("docker service ls after shoal service rm: %q", out)
		}

		// shoal -> docker: a service with most of what shoal can set,
		// including what Docker's types lack.
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "data"), []byte("s3cret"), 0o600); err != nil {
			t.Fatal(err)
		}
		d.mustDocker("secret", "create", "mixsec", filepath.Join(dir, "data"))
		d.mustDocker("config", "create", "mixcfg", filepath.Join(dir, "data"))
		d.mustShoal("network", "create", "-d", "overlay", "--subnet", "10.77.0.0/24", "mixnet")
		d.mustShoal("service", "create", "-d", "--name", "rich", "--env", "A=1", "--label", "made=shoal", "--container-label", "c=1",
			"--publish", "published=18090,target=80,masquerade=true", "--network", "name=mixnet,alias=rich-a,ip=10.77.0.50",
			"--host", "h1:10.1.2.3", "--dns", "10.0.0.53", "--dns-search", "example.org", "--dns-option", "ndots:2",
			"--ulimit", "nofile=1024:2048", "--cap-add", "NET_ADMIN", "--init", "--read-only",
			"--mount", "type=tmpfs,target=/scratch,tmpfs-size=1048576", "--health-cmd", "true", "--health-interval", "2s",
			"--limit-pids", "100", "--limit-memory", "64M", "--reserve-cpu", "0.1", "--log-driver", "json-file", "--log-opt", "max-size=1m",
			"--restart-condition", "on-failure", "--restart-max-attempts", "3", "--update-order", "start-first", "--update-delay", "1s",
			"--rollback-parallelism", "2", "--placement-pref", "spread=node.labels.zone", "--replicas-max-per-node", "2",
			"--secret", "mixsec", "--config", "source=mixcfg,target=/etc/mix.conf", "--stop-grace-period", "1s", "--stop-signal", "SIGINT",
			"--workdir", "/tmp", "--hostname", "rich-host", busybox)
		d.mustShoal("service", "create", "-d", "--name", "plain", "--stop-grace-period", "1s", busybox)
		waitService(t, d, "rich", "1/1 (max 2 per node)")
		waitService(t, d, "plain", "1/1")
		out := d.mustDocker("service", "inspect", "--format", "{{.Spec.Labels.made}} {{.Spec.TaskTemplate.ContainerSpec.Env}} {{(index .Endpoint.Ports 0).PublishedPort}}", "rich")
		if strings.TrimSpace(out) != "shoal [A=1] 18090" {
			t.Errorf("docker service inspect rich: %q", out)
		}

		before = inspectSpec(t, d, "rich")
		if out := d.mustDocker("service", "update", "-d", "--env-add", "X=1", "rich"); strings.TrimSpace(out) != "rich" {
			t.Errorf("docker service update rich: %q", out)
		}
		after = inspectSpec(t, d, "rich")
		b1, e1 = withoutEnv(t, before, "TaskTemplate", "ContainerSpec", "Env")
		b2, e2 = withoutEnv(t, after, "TaskTemplate", "ContainerSpec", "Env")
		if b1 != b2 {
			t.Errorf("docker service update --env-add changed more than env of a shoal service:\nbefore %s\nafter  %s", b1, b2)
		}
		// docker's --env-add orders the list as it likes.
		if envSet(fmt.Sprint(e1)) != "A=1" || envSet(fmt.Sprint(e2)) != "A=1 X=1" {
			t.Errorf("env before and after docker's update: %v, %v; want [A=1], [A=1 X=1]", e1, e2)
		}
		out = d.mustShoal("service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Env}}", "rich")
		if envSet(out) != "A=1 X=1" {
			t.Errorf("shoal service inspect after docker's update: %q", out)
		}
		waitService(t, d, "rich", "1/1 (max 2 per node)")

		out = d.mustDocker("service", "scale", "-d", "plain=3")
		if !strings.Contains(out, "plain scaled to 3") {
			t.Errorf("docker service scale: %q", out)
		}
		shoalReplicas(t, d, "plain", "3/3")

		if out := d.mustDocker("service", "rm", "rich", "plain"); strings.TrimSpace(out) != "rich\nplain" {
			t.Errorf("docker service rm: %q", out)
		}
		if out := d.mustShoal("service", "ls", "-q"); strings.TrimSpace(out) != "" {
			t.Errorf("shoal service ls after docker service rm: %q", out)
		}
	})
}

// exampleApp copies examples/app into a temporary directory with its
// image references on reg and its published port 8080 moved to port.
func exampleApp(t *testing.T, reg string, port int) string {
	t.Helper()
	src := filepath.Join("..", "..", "examples", "app")
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "app.yml" {
			s := string(b)
			for _, r := range [][2]string{{"127.0.0.1:5000/shoal/", reg + "/shoal/"}, {`"8080:80"`, fmt.Sprintf(`"%d:80"`, port)},
				// docker's Compose schema (v3) knows only the short form;
				// swarm ignores depends_on anyway.
				{"    depends_on:\n      web:\n        condition: service_healthy\n", "    depends_on: [web]\n"}} {
				if !strings.Contains(s, r[0]) {
					t.Fatalf("examples/app/app.yml no longer has %q", r[0])
				}
				s = strings.ReplaceAll(s, r[0], r[1])
			}
			// docker 20.10 reads a file without a version as Compose 1.0.
			b = []byte("version: \"3.9\"\n" + s)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// freePort is a TCP port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	_, p, _ := strings.Cut(freeAddr(t), ":")
	var n int
	fmt.Sscan(p, &n)
	return n
}

// TestDockerCLIStackDeploy: docker stack deploy of examples/app (docker
// reads the Compose file and creates the networks, config, secret and
// services through the API), stack ls/services/ps, the shoal CLI's view
// of docker's stack, and docker stack rm removing everything labelled
// with the stack.
func TestDockerCLIStackDeploy(t *testing.T) {
	forEachCLI(t, func(t *testing.T, c cli) {
		reg := images.StartRegistry(t)
		whoami := images.PushTest(t, reg, images.Whoami)
		busybox := images.PushTest(t, reg, images.Busybox)
		port := freePort(t)
		dir := exampleApp(t, reg, port)
		d := startDaemon(t, c, "")
		d.mustDocker("swarm", "init", "--listen-addr", d.addr, "--advertise-addr", d.addr)
		netsBefore := testutil.SortedLines(d.mustDocker("network", "ls", "--format", "{{.Name}}"))

		out := d.mustDocker("stack", "deploy", "-c", filepath.Join(dir, "app.yml"), "app")
		for _, want := range []string{"Creating network app_front", "Creating network app_back", "Creating secret app_api_token",
			"Creating config app_web_conf", "Creating service app_web", "Creating service app_worker"} {
			if !strings.Contains(out, want+"\n") {
				t.Errorf("docker stack deploy output lacks %q:\n%s", want, out)
			}
		}

		out = d.mustDocker("stack", "ls")
		if !regexp.MustCompile(`(?m)^NAME\s+SERVICES(\s+ORCHESTRATOR)?\s*\napp\s+2(\s+Swarm)?\s*$`).MatchString(out) {
			t.Errorf("docker stack ls:\n%s", out)
		}
		testutil.EventuallyErr(t, 90*time.Second, 500*time.Millisecond, func() error {
			out, err := d.docker("stack", "services", "app", "--format", "{{.Name}} {{.Mode}} {{.Replicas}} {{.Image}} {{.Ports}}")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			want := []string{
				fmt.Sprintf("app_web replicated 3/3 (max 3 per node) %s *:%d->80/tcp", whoami, port),
				"app_worker replicated 1/1 " + busybox + " ",
			}
			if got := testutil.SortedLines(out); strings.Join(got, "\n") != strings.TrimSpace(strings.Join(want, "\n")) {
				return fmt.Errorf("docker stack services app:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
			}
			return nil
		}, "docker stack services app shows app_web 3/3 and app_worker 1/1")
		out = d.mustDocker("stack", "services", "app")
		if !regexp.MustCompile(`(?m)^ID\s+NAME\s+MODE\s+REPLICAS\s+IMAGE\s+PORTS\n`).MatchString(out) {
			t.Errorf("docker stack services app (table):\n%s", out)
		}

		out = d.mustDocker("stack", "ps", "app", "--filter", "desired-state=running", "--format", "{{.Name}} {{.Image}} {{.CurrentState}}")
		got := testutil.SortedLines(out)
		if len(got) != 4 {
			t.Errorf("docker stack ps app: want 4 running tasks:\n%s", out)
		}
		for i, l := range got {
			name, img := fmt.Sprintf("app_web.%d", i+1), whoami
			if i == 3 {
				name, img = "app_worker.1", busybox
			}
			if !strings.HasPrefix(l, name+" "+img+" Running ") {
				t.Errorf("docker stack ps app line %d: %q, want %s on %s Running", i, l, name, img)
			}
		}
		out = d.mustDocker("stack", "ps", "app")
		if !regexp.MustCompile(`(?m)^ID\s+NAME\s+IMAGE\s+NODE\s+DESIRED STATE\s+CURRENT STATE\s+ERROR\s+PORTS\n`).MatchString(out) {
			t.Errorf("docker stack ps app (table):\n%s", out)
		}

		// The worker reads the secret and reaches web through the back
		// network, by the service name.
		testutil.EventuallyErr(t, 30*time.Second, 500*time.Millisecond, func() error {
			out, err := d.docker("service", "logs", "--raw", "app_worker")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			if !strings.Contains(out, "(token: 21 bytes)") {
				return fmt.Errorf("docker service logs app_worker:\n%s", out)
			}
			return nil
		}, "the worker prints a line with the secret's size")

		// Deploying the same file again updates each service with the same
		// spec: no task is replaced.
		tasks := testutil.SortedLines(d.mustDocker("stack", "ps", "-q", "app"))
		out = d.mustDocker("stack", "deploy", "-c", filepath.Join(dir, "app.yml"), "app")
		wantLines(t, "docker stack deploy again", out, "Updating service app_web (id: "+strings.TrimSpace(d.mustDocker("service", "inspect", "--format", "{{.ID}}", "app_web"))+")")
		testutil.ConsistentlyErr(t, 3*time.Second, 250*time.Millisecond, func() error {
			if now := testutil.SortedLines(d.mustDocker("stack", "ps", "-q", "app")); strings.Join(now, " ") != strings.Join(tasks, " ") {
				return fmt.Errorf("tasks before the second deploy %v, after %v", tasks, now)
			}
			return nil
		}, "a second deploy of the same file replacing no task")

		// The shoal CLI sees docker's stack and its services.
		out = d.mustShoal("service", "ls", "--format", "{{.Name}}")
		if got := strings.Join(testutil.SortedLines(out), " "); got != "app_web app_worker" {
			t.Errorf("shoal service ls: %q", out)
		}
		out = d.mustShoal("stack", "ls", "--format", "{{.Name}} {{.Services}}")
		if strings.TrimSpace(out) != "app 2" {
			t.Errorf("shoal stack ls does not show docker's stack app with 2 services: %q", out)
		}
		out = d.mustShoal("stack", "services", "app", "--format", "{{.Name}} {{.Replicas}}")
		if got := strings.Join(testutil.SortedLines(out), ","); got != "app_web 3/3 (max 3 per node),app_worker 1/1" {
			t.Errorf("shoal stack services app: %q", out)
		}

		start := time.Now()
		out = d.mustDocker("stack", "rm", "app")
		t.Logf("docker stack rm app took %v", time.Since(start).Round(time.Millisecond))
		for _, want := range []string{"Removing service app_web", "Removing service app_worker", "Removing secret app_api_token",
			"Removing config app_web_conf", "Removing network app_front", "Removing network app_back"} {
			if !strings.Contains(out, want+"\n") {
				t.Errorf("docker stack rm output lacks %q:\n%s", want, out)
			}
		}
		testutil.EventuallyErr(t, 30*time.Second, 250*time.Millisecond, func() error {
			for _, what := range [][]string{{"service", "ls"}, {"secret", "ls"}, {"config", "ls"}, {"network", "ls"}} {
				out, err := d.docker(append(what, "-q", "--filter", "label=com.docker.stack.namespace=app")...)
				if err != nil || strings.TrimSpace(out) != "" {
					return fmt.Errorf("docker %s with the stack label after stack rm: %v %q", strings.Join(what, " "), err, out)
				}
			}
			if got := testutil.SortedLines(d.mustDocker("network", "ls", "--format", "{{.Name}}")); strings.Join(got, " ") != strings.Join(netsBefore, " ") {
				return fmt.Errorf("networks after stack rm: %v, before deploy: %v", got, netsBefore)
			}
			return nil
		}, "docker stack rm removes the stack's services, secrets, configs and networks")
		if out := d.mustDocker("stack", "ls"); strings.Contains(out, "app") {
			t.Errorf("docker stack ls after rm:\n%s", out)
		}

		// The reverse: a stack deployed by shoal is docker's to list and
		// remove.
		small := filepath.Join(dir, "small.yml")
		if err := os.WriteFile(small, []byte("services:\n  one:\n    image: "+busybox+"\n    stop_grace_period: 1s\n    networks: [n]\nnetworks:\n  n: {}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		d.mustShoal("stack", "deploy", "-d", "-c", small, "sh")
		if out := d.mustDocker("stack", "ls", "--format", "{{.Name}} {{.Services}}"); strings.TrimSpace(out) != "sh 1" {
			t.Errorf("docker stack ls does not show shoal's stack sh: %q", out)
		}
		testutil.EventuallyErr(t, 60*time.Second, 250*time.Millisecond, func() error {
			out, err := d.docker("stack", "services", "sh", "--format", "{{.Name}} {{.Replicas}}")
			if err != nil || strings.TrimSpace(out) != "sh_one 1/1" {
				return fmt.Errorf("docker stack services sh: %v %q", err, out)
			}
			return nil
		}, "docker stack services sh shows sh_one 1/1")
		if out := d.mustDocker("stack", "ps", "sh", "--format", "{{.Name}} {{.DesiredState}}"); strings.TrimSpace(out) != "sh_one.1 Running" {
			t.Errorf("docker stack ps sh: %q", out)
		}
		out = d.mustDocker("stack", "rm", "sh")
		wantLines(t, "docker stack rm sh", out, "Removing service sh_one", "Removing network sh_n")
		if out := d.mustShoal("stack", "ls", "--format", "{{.Name}}"); strings.TrimSpace(out) != "" {
			t.Errorf("shoal stack ls after docker stack rm sh: %q", out)
		}
		if out := d.mustShoal("network", "ls", "--filter", "name=sh_n", "-q"); strings.TrimSpace(out) != "" {
			t.Errorf("shoal network ls after docker stack rm sh: %q", out)
		}
	})
}
