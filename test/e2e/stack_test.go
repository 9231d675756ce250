package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/test/images"
)

// exampleRegistry is the address examples/app/app.yml pulls from.
const exampleRegistry = "127.0.0.1:5000"

// exampleApp returns a directory holding the example stack (app.yml and its
// files) whose images can be pulled, and the registry it uses. The example
// names 127.0.0.1:5000: a registry already answering there (the demo's
// docker-registry) gets the test images pushed; a free port gets an
// in-process registry for the test; otherwise the example is copied with
// its image references pointing at an in-process registry elsewhere.
func exampleApp(t *testing.T) (dir, reg string) {
	t.Helper()
	src, err := filepath.Abs("../../examples/app")
	if err != nil {
		t.Fatal(err)
	}
	reg = exampleRegistry
	c := http.Client{Timeout: 2 * time.Second}
	if resp, err := c.Get("http://" + exampleRegistry + "/v2/"); err == nil {
		resp.Body.Close()
		t.Logf("pushing the test images to the registry already answering on %s", exampleRegistry)
	} else if ln, err := net.Listen("tcp", exampleRegistry); err == nil {
		srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		t.Logf("serving an in-process registry on %s", exampleRegistry)
	} else {
		reg = images.StartRegistry(t)
		t.Logf("%s is taken and answers no registry protocol: copying the example with its images on %s", exampleRegistry, reg)
	}
	images.PushTest(t, reg, images.Whoami)
	images.PushTest(t, reg, images.Busybox)
	if reg == exampleRegistry {
		return src, reg
	}
	dir = copyDir(t, src)
	rewrite(t, filepath.Join(dir, "app.yml"), exampleRegistry, reg)
	return dir, reg
}

// copyDir copies the regular files of src into a new temporary directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// rewrite replaces old by new in a file, failing when old is absent.
func rewrite(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s does not contain %q", path, old)
	}
	if err := os.WriteFile(path, bytes.ReplaceAll(b, []byte(old), []byte(new)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// run runs the CLI against d in dir, with extra environment, bounded by
// timeout, and returns stdout and stderr apart.
func (d *daemon) run(dir string, env []string, timeout time.Duration, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.cli, append([]string{"-H", "unix://" + d.socket()}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("shoal %s: still running after %v: %w", strings.Join(args, " "), timeout, err)
	}
	return stdout.String(), stderr.String(), err
}

// control is the Control API through d's socket.
func (d *daemon) control() api.ControlClient { return api.NewControlClient(d.client()) }

// serviceTasks is every task of the named service.
func serviceTasks(ctl api.ControlClient, name string) ([]*api.Task, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	svc, err := ctl.GetService(ctx, &api.GetServiceRequest{ServiceId: name})
	if err != nil {
		return nil, err
	}
	resp, err := ctl.ListTasks(ctx, &api.ListTasksRequest{Filters: &api.ListFilters{ServiceIds: []string{svc.GetService().GetId()}}})
	if err != nil {
		return nil, err
	}
	return resp.GetTasks(), nil
}

func getService(ctl api.ControlClient, name string) (*api.Service, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := ctl.GetService(ctx, &api.GetServiceRequest{ServiceId: name})
	return resp.GetService(), err
}

// stackConverged checks `stack services` shows every service n/n, with the
// names and counts in want.
func stackConverged(d *daemon, stack string, want map[string]int) error {
	out, err := d.shoal("stack", "services", stack, "--format", "{{.Name}}|{{.Replicas}}")
	if err != nil {
		return fmt.Errorf("stack services: %v: %s", err, out)
	}
	got := map[string]string{}
	for _, l := range testutil.SortedLines(out) {
		name, rep, _ := strings.Cut(l, "|")
		got[name] = rep
	}
	if len(got) != len(want) {
		return fmt.Errorf("stack services %s lists %v, want %v", stack, got, want)
	}
	for name, n := range want {
		if r := got[name]; !strings.HasPrefix(r, fmt.Sprintf("%d/%d", n, n)) {
			return fmt.Errorf("stack services %s: %s shows %q, want %d/%d", stack, name, r, n, n)
		}
	}
	return nil
}

// taskWatch records, for every task of the watched services, when it was
// first seen in each state (API samples every 100ms) and whether its
// container was running in containerd while the task was STARTING.
type taskWatch struct {
	mu       sync.Mutex
	firstAt  map[string]map[api.TaskState]time.Time
	ctrWhile map[string]bool // container running while STARTING
	running  []int           // RUNNING tasks per sample (first service)
	stop     chan struct{}
	done     chan struct{}
}

func watchTasks(d *daemon, services ...string) *taskWatch {
	w := &taskWatch{firstAt: map[string]map[api.TaskState]time.Time{}, ctrWhile: map[string]bool{},
		stop: make(chan struct{}), done: make(chan struct{})}
	ctl := d.control()
	go func() {
		defer close(w.done)
		for {
			now := time.Now()
			ctrs, _ := runningIDsOK(d.ns)
			for i, svc := range services {
				tasks, err := serviceTasks(ctl, svc)
				if err != nil {
					continue
				}
				w.mu.Lock()
				n := 0
				for _, tk := range tasks {
					st := tk.GetStatus().GetState()
					m := w.firstAt[tk.GetId()]
					if m == nil {
						m = map[api.TaskState]time.Time{}
						w.firstAt[tk.GetId()] = m
					}
					if _, ok := m[st]; !ok {
						m[st] = now
					}
					if st == api.TaskState_STARTING && slices.Contains(ctrs, tk.GetId()) {
						w.ctrWhile[tk.GetId()] = true
					}
					if st == api.TaskState_RUNNING {
						n++
					}
				}
				if i == 0 {
					w.running = append(w.running, n)
				}
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *taskWatch) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// TestStackExampleApp deploys examples/app/app.yml as a user would (`stack
// deploy -c app.yml app` in examples/app, waiting for convergence) on one
// node, then:
//   - every service converges (stack services: 3/3 and 1/1); each web task
//     was seen STARTING with its container running before it was RUNNING,
//     at least 3s later (the first probe runs after the 5s interval): RUNNING
//     only once healthy; the worker prints its lines and reads the secret;
//   - redeploying the unchanged file prints no create or update, and changes
//     no service (version) and no task (IDs);
//   - a file with another environment value for web rolls web by its
//     update_config (start-first, one at a time, 2s apart: 3 to 4 web tasks
//     RUNNING throughout), each slot replaced once, the worker untouched;
//   - --prune with a file without the worker removes the worker only;
//   - stack rm removes services, networks, secrets, configs and containers.
func TestStackExampleApp(t *testing.T) {
	testutil.RequiresContainerd(t)
	dir, reg := exampleApp(t)
	d := newDaemon(t, "--insecure-registry", reg)
	d.start()
	d.mustShoal("swarm", "init", "--advertise-addr", d.addr)
	ctl := d.control()
	netsBefore := testutil.SortedLines(d.mustShoal("network", "ls", "--format", "{{.Name}}"))

	w := watchTasks(d, "app_web")
	start := time.Now()
	stdout, stderr, err := d.run(dir, nil, 150*time.Second, "stack", "deploy", "-c", "app.yml", "app")
	w.halt()
	if err != nil {
		t.Fatalf("stack deploy: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	t.Logf("stack deploy took %v; stderr: %q", time.Since(start).Round(time.Millisecond), stderr)
	for _, want := range []string{"Creating network app_back", "Creating network app_front", "Creating secret app_api_token",
		"Creating config app_web_conf", "Creating service app_web", "Creating service app_worker"} {
		if !strings.Contains(stdout, want+"\n") {
			t.Errorf("stack deploy output lacks %q:\n%s", want, stdout)
		}
	}
	if i, j := strings.Index(stdout, "Creating service app_web"), strings.Index(stdout, "Creating service app_worker"); i < 0 || j < i {
		t.Errorf("app_worker was not created after app_web (depends_on):\n%s", stdout)
	}
	waitFor(t, 30*time.Second, "the stack to converge", func() error {
		return stackConverged(d, "app", map[string]int{"app_web": 3, "app_worker": 1})
	})

	// Health: RUNNING only after the health check passed.
	webTasks, err := serviceTasks(ctl, "app_web")
	if err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	for _, tk := range webTasks {
		if tk.GetStatus().GetState() != api.TaskState_RUNNING {
			continue
		}
		seen := w.firstAt[tk.GetId()]
		st, okS := seen[api.TaskState_STARTING]
		run, okR := seen[api.TaskState_RUNNING]
		switch {
		case !okS || !okR:
			t.Errorf("web task %s: states seen %v; want STARTING then RUNNING", tk.GetId(), seen)
		case !w.ctrWhile[tk.GetId()]:
			t.Errorf("web task %s: its container was never seen running while the task was STARTING", tk.GetId())
		case run.Sub(st) < 3*time.Second:
			t.Errorf("web task %s was RUNNING %v after STARTING; the health check (first probe after 5s) cannot have passed", tk.GetId(), run.Sub(st))
		default:
			t.Logf("web task %s: STARTING (container running) -> RUNNING after %v", tk.GetId(), run.Sub(st).Round(100*time.Millisecond))
		}
	}
	w.mu.Unlock()

	// The worker prints its lines and reads the secret.
	var wlogs string
	waitFor(t, 30*time.Second, "two lines of the worker", func() error {
		out, err := d.shoal("service", "logs", "--raw", "app_worker")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		wlogs = out
		if !strings.Contains(out, "worker line 2:") {
			return fmt.Errorf("service logs app_worker:\n%s", out)
		}
		return nil
	})
	if !strings.Contains(wlogs, "(token: 21 bytes)") {
		t.Errorf("the worker does not read the 21-byte secret api_token:\n%s", wlogs)
	}
	if !strings.Contains(wlogs, "hostname: ") {
		t.Logf("note: the worker got no answer from http://web/ (service names do not resolve on this node yet):\n%s", wlogs)
	}

	// Unchanged file: nothing is sent, nothing rolls.
	type snap struct {
		versions map[string]uint64
		tasks    []string
	}
	snapshot := func() snap {
		t.Helper()
		s := snap{versions: map[string]uint64{}}
		for _, name := range []string{"app_web", "app_worker"} {
			svc, err := getService(ctl, name)
			if err != nil {
				t.Fatal(err)
			}
			s.versions[name] = svc.GetMeta().GetVersion()
		}
		s.tasks = testutil.SortedLines(d.mustShoal("service", "ps", "-q", "--no-trunc", "app_web", "app_worker"))
		return s
	}
	before := snapshot()
	stdout, stderr, err = d.run(dir, nil, 60*time.Second, "stack", "deploy", "-c", "app.yml", "app")
	if err != nil {
		t.Fatalf("redeploy: %v\n%s\n%s", err, stdout, stderr)
	}
	if strings.Contains(stdout, "Updating") || strings.Contains(stdout, "Creating") {
		t.Errorf("redeploying the unchanged file created or updated something:\n%s", stdout)
	}
	// Nothing changes for 3s after the redeploy returns: no service write,
	// no task replaced (a write would show within a second or two).
	testutil.ConsistentlyErr(t, 3*time.Second, 250*time.Millisecond, func() error {
		after := snapshot()
		for name, v := range before.versions {
			if after.versions[name] != v {
				return fmt.Errorf("service %s written: version %d -> %d", name, v, after.versions[name])
			}
		}
		if !slices.Equal(before.tasks, after.tasks) {
			return fmt.Errorf("tasks changed:\nbefore %v\nafter  %v", before.tasks, after.tasks)
		}
		return nil
	}, "redeploying the unchanged file changing nothing")

	// Another environment value: web rolls by its update_config.
	changed := copyDir(t, dir)
	rewrite(t, filepath.Join(changed, "app.yml"), `      PORT: "80"`, "      PORT: \"80\"\n      GREETING: changed")
	oldWeb := map[string]bool{}
	for _, tk := range webTasks {
		oldWeb[tk.GetId()] = true
	}
	workerBefore := testutil.SortedLines(d.mustShoal("service", "ps", "-q", "--no-trunc", "app_worker"))
	w = watchTasks(d, "app_web")
	updateStart := time.Now()
	stdout, stderr, err = d.run(changed, nil, 60*time.Second, "stack", "deploy", "-d", "-c", "app.yml", "app")
	if err != nil {
		w.halt()
		t.Fatalf("deploy of the changed file: %v\n%s\n%s", err, stdout, stderr)
	}
	if !strings.Contains(stdout, "Updating service app_web (id: ") || strings.Contains(stdout, "app_worker") {
		t.Errorf("deploy of the changed file: want app_web updated, app_worker untouched:\n%s", stdout)
	}
	rolled := poll(60*time.Second, func() error {
		out, err := d.shoal("service", "inspect", "--format", "{{.UpdateStatus.State}}", "app_web")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if s := strings.TrimSpace(out); !strings.EqualFold(s, "completed") {
			return fmt.Errorf("update status %q", s)
		}
		return nil
	})
	w.halt()
	if rolled != nil {
		// Keep going: prune and rm are still worth checking.
		t.Errorf("the rolling update of app_web did not complete within 60s: %v\nservice inspect: %s\nservice ps:\n%s", rolled,
			d.mustShoal("service", "inspect", "--format", "{{.UpdateStatus.State}}: {{.UpdateStatus.Message}}", "app_web"),
			d.mustShoal("service", "ps", "--no-trunc", "app_web"))
	} else {
		t.Logf("rolling update of app_web completed in %v", time.Since(updateStart).Round(time.Millisecond))
		checkRoll(t, ctl, w, oldWeb)
	}
	if got := testutil.SortedLines(d.mustShoal("service", "ps", "-q", "--no-trunc", "app_worker")); !slices.Equal(got, workerBefore) {
		t.Errorf("updating web touched the worker's tasks: %v -> %v", workerBefore, got)
	}

	// --prune: a file without the worker removes it, and only it.
	pruned := filepath.Join(changed, "web-only.yml")
	b, err := os.ReadFile(filepath.Join(changed, "app.yml"))
	if err != nil {
		t.Fatal(err)
	}
	i, j := bytes.Index(b, []byte("\n  worker:\n")), bytes.Index(b, []byte("\nnetworks:\n"))
	if i < 0 || j < i {
		t.Fatalf("cannot find the worker service in app.yml")
	}
	if err := os.WriteFile(pruned, append(append([]byte{}, b[:i+1]...), b[j:]...), 0o644); err != nil {
		t.Fatal(err)
	}
	webBefore := testutil.SortedLines(d.mustShoal("service", "ps", "-q", "--no-trunc", "app_web"))
	stdout, stderr, err = d.run(changed, nil, 60*time.Second, "stack", "deploy", "-d", "--prune", "-c", "web-only.yml", "app")
	if err != nil {
		t.Fatalf("deploy --prune: %v\n%s\n%s", err, stdout, stderr)
	}
	if !strings.Contains(stdout, "Removing service app_worker\n") || strings.Contains(stdout, "Updating") {
		t.Errorf("deploy --prune without the worker: want only app_worker removed:\n%s", stdout)
	}
	waitFor(t, 30*time.Second, "the worker to be pruned", func() error {
		return stackConverged(d, "app", map[string]int{"app_web": 3})
	})
	if got := testutil.SortedLines(d.mustShoal("service", "ps", "-q", "--no-trunc", "app_web")); !slices.Equal(got, webBefore) {
		t.Errorf("deploy --prune touched web's tasks: %v -> %v", webBefore, got)
	}

	// stack rm removes everything the stack made.
	stdout, stderr, err = d.run(dir, nil, 60*time.Second, "stack", "rm", "app")
	if err != nil {
		t.Fatalf("stack rm: %v\n%s\n%s", err, stdout, stderr)
	}
	for _, want := range []string{"Removing service app_web", "Removing secret app_api_token", "Removing config app_web_conf",
		"Removing network app_back", "Removing network app_front"} {
		if !strings.Contains(stdout, want+"\n") {
			t.Errorf("stack rm output lacks %q:\n%s", want, stdout)
		}
	}
	checkNothingLeft(t, d, netsBefore)
}

// poll calls cond every 100ms until it returns nil or timeout passes, and
// returns its last error then.
func poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		<-tick.C
	}
}

// checkNothingLeft waits until d has no service, secret, config or
// container and its networks are netsBefore.
func checkNothingLeft(t *testing.T, d *daemon, netsBefore []string) {
	t.Helper()
	waitFor(t, 30*time.Second, "the stack's objects and containers to go", func() error {
		for _, kind := range []string{"service", "secret", "config"} {
			if out := d.mustShoal(kind, "ls", "-q"); strings.TrimSpace(out) != "" {
				return fmt.Errorf("%s ls -q: %s", kind, out)
			}
		}
		if nets := testutil.SortedLines(d.mustShoal("network", "ls", "--format", "{{.Name}}")); !slices.Equal(nets, netsBefore) {
			return fmt.Errorf("networks %v, want %v", nets, netsBefore)
		}
		if n := containerCount(t, d.ns); n != 0 {
			return fmt.Errorf("%d containers left", n)
		}
		return nil
	})
}

// containerInfo is the part of `ctr containers info` the tests read: the
// OCI spec the container runs with.
type containerInfo struct {
	Spec struct {
		Process struct {
			Env []string `json:"env"`
		} `json:"process"`
		Mounts []struct {
			Destination string `json:"destination"`
		} `json:"mounts"`
		Linux struct {
			Resources struct {
				Memory *struct {
					Limit *int64 `json:"limit"`
				} `json:"memory"`
				CPU *struct {
					Quota  *int64  `json:"quota"`
					Period *uint64 `json:"period"`
				} `json:"cpu"`
				Pids *struct {
					Limit int64 `json:"limit"`
				} `json:"pids"`
			} `json:"resources"`
		} `json:"linux"`
	} `json:"Spec"`
}

// ctrInfo reads the OCI spec of a container of d.
func (d *daemon) ctrInfo(t *testing.T, id string) containerInfo {
	t.Helper()
	out, err := exec.Command("ctr", "-n", d.ns, "containers", "info", id).Output()
	if err != nil {
		t.Fatalf("ctr containers info %s: %v", id, err)
	}
	var ci containerInfo
	if err := json.Unmarshal(out, &ci); err != nil {
		t.Fatalf("ctr containers info %s: %v\n%s", id, err, out)
	}
	return ci
}

// TestStackFullFile deploys testdata/stack/full.yml (images from
// ${REGISTRY}), which uses update_config, rollback_config, restart_policy,
// placement (constraints, preferences, max_replicas_per_node), resources,
// healthcheck, secrets, configs, env_file, ports and networks. Both services
// converge; the service specs carry what the file says; the containers run
// with it (containerd's OCI spec: environment from env_file and environment
// with the task template expanded, memory, CPU and pids limits, the secret
// and config mounts; the files' contents inside); front, whose health check
// probes the port set by its environment, is RUNNING. stack rm removes
// everything.
func TestStackFullFile(t *testing.T) {
	testutil.RequiresContainerd(t)
	reg := images.StartRegistry(t)
	images.PushTest(t, reg, images.Whoami)
	images.PushTest(t, reg, images.Busybox)
	d := newDaemon(t, "--insecure-registry", reg)
	d.start()
	d.mustShoal("swarm", "init", "--advertise-addr", d.addr)
	ctl := d.control()
	netsBefore := testutil.SortedLines(d.mustShoal("network", "ls", "--format", "{{.Name}}"))
	dir, err := filepath.Abs("testdata/stack")
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"REGISTRY=" + reg}

	stdout, stderr, err := d.run(dir, env, 110*time.Second, "stack", "deploy", "-c", "full.yml", "full")
	if err != nil {
		t.Fatalf("stack deploy: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if stderr != "" {
		t.Errorf("stack deploy warned about a file with supported keys only:\n%s", stderr)
	}
	waitFor(t, 30*time.Second, "the stack to converge", func() error {
		return stackConverged(d, "full", map[string]int{"full_front": 2, "full_back": 1})
	})

	// The specs carry the file.
	front, err := getService(ctl, "full_front")
	if err != nil {
		t.Fatal(err)
	}
	spec := front.GetSpec()
	check := func(what string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("full_front %s: %v, want %v", what, got, want)
		}
	}
	up, rb, ts := spec.GetUpdate(), spec.GetRollback(), spec.GetTask()
	check("update_config", fmt.Sprint(up.GetParallelism(), up.GetDelay().AsDuration(), up.GetFailureAction(), up.GetMonitor().AsDuration(), up.GetMaxFailureRatio(), up.GetOrder()),
		"2 1s ROLLBACK 2s 0.5 START_FIRST")
	check("rollback_config", fmt.Sprint(rb.GetParallelism(), rb.GetDelay().AsDuration(), rb.GetFailureAction(), rb.GetMonitor().AsDuration(), rb.GetOrder()),
		"1 0s PAUSE 1s STOP_FIRST")
	rp := ts.GetRestart()
	check("restart_policy", fmt.Sprint(rp.GetCondition(), rp.GetDelay().AsDuration(), rp.GetMaxAttempts(), rp.GetWindow().AsDuration()), "ON_FAILURE 1s 3 30s")
	pl := ts.GetPlacement()
	var prefs []string
	for _, p := range pl.GetPreferences() {
		prefs = append(prefs, p.GetSpreadDescriptor())
	}
	check("placement", fmt.Sprint(len(pl.GetConstraints()), prefs, pl.GetMaxReplicas()), "2 [node.labels.zone] 2")
	lim, res := ts.GetResources().GetLimits(), ts.GetResources().GetReservations()
	check("resources", fmt.Sprint(lim.GetNanoCpus(), lim.GetMemoryBytes(), lim.GetPids(), res.GetNanoCpus(), res.GetMemoryBytes()),
		fmt.Sprint(500000000, 64<<20, 100, 10000000, 8<<20))
	hc := ts.GetContainer().GetHealthcheck()
	check("healthcheck", fmt.Sprint(hc.GetTest(), hc.GetInterval().AsDuration(), hc.GetRetries(), hc.GetStartPeriod().AsDuration()),
		"[CMD /whoami -probe http://127.0.0.1:8080/health] 1s 3 5s")
	if s := ts.GetContainer().GetSecrets(); len(s) != 1 || s[0].GetSecretName() != "full_token" || s[0].GetFile().GetName() != "token.txt" || s[0].GetFile().GetMode() != 0o440 {
		t.Errorf("full_front secrets: %v", s)
	}
	if c := ts.GetContainer().GetConfigs(); len(c) != 1 || c[0].GetConfigName() != "full_settings" || c[0].GetFile().GetName() != "/etc/front/settings.conf" {
		t.Errorf("full_front configs: %v", c)
	}
	check("networks", len(ts.GetNetworks()), 2)
	check("ports", len(spec.GetEndpoint().GetPorts()), 2)
	check("labels", spec.GetAnnotations().GetLabels()["com.example.tier"], "front")

	// The containers run with it.
	frontTasks, err := serviceTasks(ctl, "full_front")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, tk := range frontTasks {
		if tk.GetStatus().GetState() != api.TaskState_RUNNING {
			continue
		}
		n++
		ci := d.ctrInfo(t, tk.GetId())
		envs := ci.Spec.Process.Env
		for _, want := range []string{"PORT=8080", "FRONT_MODE=full"} {
			if !slices.Contains(envs, want) {
				t.Errorf("front container %s lacks %s: %v", tk.GetId(), want, envs)
			}
		}
		wantName := fmt.Sprintf("TASK_NAME=full_front.%d.%s", tk.GetSlot(), tk.GetId())
		if !slices.Contains(envs, wantName) {
			t.Errorf("front container %s: the env_file template did not expand to %s: %v", tk.GetId(), wantName, envs)
		}
		r := ci.Spec.Linux.Resources
		if r.Memory == nil || r.Memory.Limit == nil || *r.Memory.Limit != 64<<20 {
			t.Errorf("front container %s: memory limit %+v, want %d", tk.GetId(), r.Memory, 64<<20)
		}
		if r.CPU == nil || r.CPU.Quota == nil || r.CPU.Period == nil || float64(*r.CPU.Quota)/float64(*r.CPU.Period) != 0.5 {
			t.Errorf("front container %s: cpu %+v, want a quota of half the period", tk.GetId(), r.CPU)
		}
		if r.Pids == nil || r.Pids.Limit != 100 {
			t.Errorf("front container %s: pids %+v, want 100", tk.GetId(), r.Pids)
		}
		if r.Memory != nil && r.Memory.Limit != nil && r.Pids != nil {
			t.Logf("front container %s: memory limit %d, pids %d, env %v", tk.GetId(), *r.Memory.Limit, r.Pids.Limit, envs)
		}
		var dests []string
		for _, m := range ci.Spec.Mounts {
			dests = append(dests, m.Destination)
		}
		for _, want := range []string{"/run/secrets", "/etc/front/settings.conf"} {
			if !slices.Contains(dests, want) {
				t.Errorf("front container %s has no mount at %s: %v", tk.GetId(), want, dests)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d front tasks RUNNING, want 2", n)
	}
	backTasks, err := serviceTasks(ctl, "full_back")
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range backTasks {
		if tk.GetStatus().GetState() != api.TaskState_RUNNING {
			continue
		}
		for path, want := range map[string]string{"/run/secrets/token": "not-a-real-token-0123456789\n", "/settings": "mode = \"full\"\n"} {
			if got, err := d.ctrExec(tk.GetId(), "cat", path); err != nil || got != want {
				t.Errorf("back container: cat %s: %q (%v), want %q", path, got, err, want)
			}
		}
		if got, err := d.ctrExec(tk.GetId(), "sh", "-c", "echo $BACK_ROLE"); err != nil || strings.TrimSpace(got) != "backend" {
			t.Errorf("back container: BACK_ROLE from env_file is %q (%v), want backend", got, err)
		}
	}

	stdout, stderr, err = d.run(dir, env, 60*time.Second, "stack", "rm", "full")
	if err != nil {
		t.Fatalf("stack rm: %v\n%s\n%s", err, stdout, stderr)
	}
	checkNothingLeft(t, d, netsBefore)
}

// TestStackWarningsAndInvalidFiles: keys docker stack deploy ignores give
// Docker's warnings, word for word, and the deploy goes on; invalid files
// fail with exit status 1, an error naming the file and the key at fault,
// and create nothing (no service, secret, config or network).
func TestStackWarningsAndInvalidFiles(t *testing.T) {
	testutil.RequiresContainerd(t)
	reg := images.StartRegistry(t)
	images.PushTest(t, reg, images.Busybox)
	d := newDaemon(t, "--insecure-registry", reg)
	d.start()
	d.mustShoal("swarm", "init", "--advertise-addr", d.addr)
	netsBefore := testutil.SortedLines(d.mustShoal("network", "ls", "--format", "{{.Name}}"))
	dir, err := filepath.Abs("testdata/stack")
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"REGISTRY=" + reg}

	stdout, stderr, err := d.run(dir, env, 60*time.Second, "stack", "deploy", "-d", "-c", "warnings.yml", "w")
	if err != nil {
		t.Fatalf("stack deploy: %v\n%s\n%s", err, stdout, stderr)
	}
	const docker = "Ignoring unsupported options: build, restart\n\n" +
		"Ignoring deprecated options:\n\n" +
		"container_name: Setting the container name is not supported.\n\n" +
		"expose: Exposing ports is unnecessary - services on the same network can access each other's containers on any port.\n\n"
	if stderr != docker {
		t.Errorf("stack deploy warnings:\n%q\nwant Docker's:\n%q", stderr, docker)
	}
	if stdout != "Creating network w_default\nCreating service w_web\n" {
		t.Errorf("stack deploy output:\n%s", stdout)
	}
	waitFor(t, 60*time.Second, "w_web to run", func() error {
		return stackConverged(d, "w", map[string]int{"w_web": 1})
	})
	if _, _, err := d.run(dir, env, 60*time.Second, "stack", "rm", "w"); err != nil {
		t.Fatalf("stack rm w: %v", err)
	}
	checkNothingLeft(t, d, netsBefore)

	// Invalid files. Each declares networks, a secret, a config and a valid
	// service a, so that a partial deploy would show.
	const base = `services:
  a:
    image: ${REGISTRY}/shoal/busybox:latest
    networks: [net]
    secrets: [tok]
    configs: [conf]
  b:
%s
networks:
  net: {}
secrets:
  tok:
    file: ./tok.txt
configs:
  conf:
    file: ./conf.txt
`
	for _, c := range []struct {
		name     string
		svc, top string // service b's extra keys; extra top-level secrets
		want     []string
	}{
		{"refused key", "    mem_limit: 64m", "", []string{`bad.yml: service "b": mem_limit: use deploy.resources.limits.memory`, "Compose file contains unsupported options"}},
		{"unknown key", "    imagee: busybox", "", []string{`bad.yml: service "b": imagee: unknown key`}},
		{"restart condition", "    deploy:\n      restart_policy:\n        condition: always", "", []string{`bad.yml: service "b": deploy.restart_policy.condition`, "always"}},
		{"constraint", "    deploy:\n      placement:\n        constraints: [node.rol==manager]", "", []string{`bad.yml: service "b": deploy.placement.constraints`, "node.rol"}},
		{"replicas", "    deploy:\n      replicas: many", "", []string{"bad.yml", "replicas"}},
		{"undefined network", "    networks: [nope]", "", []string{"bad.yml", `service "b"`, "undefined network nope"}},
		{"yaml syntax", "    environment: [unclosed", "", []string{"bad.yml", "line"}},
		{"missing secret file", "    secrets: [missing]", "  missing:\n    file: ./nope.txt\n", []string{"bad.yml", "secrets.missing.file", "nope.txt"}},
		// Faults only the daemon's validation knows about: the deploy must
		// still refuse them before it creates anything.
		{"memory limit below the minimum", "    deploy:\n      resources:\n        limits:\n          memory: 1M", "", []string{"bad.yml", "b", "memory"}},
		{"reservation above the limit", "    deploy:\n      resources:\n        limits:\n          memory: 16M\n        reservations:\n          memory: 32M", "", []string{"bad.yml", "b", "memory"}},
		{"port published twice", "    ports: [\"8080:80\", \"8080:81\"]", "", []string{"bad.yml", "b", "8080"}},
		{"relative working dir", "    working_dir: relative/dir", "", []string{"bad.yml", "b", "relative/dir"}},
		{"invalid stop signal", "    stop_signal: SIGFOO", "", []string{"bad.yml", "b", "SIGFOO"}},
		{"invalid image reference", "    image: Bad/Image", "", []string{"bad.yml", "b", "Bad/Image"}},
		{"health interval below 1ms", "    healthcheck:\n      test: [\"CMD\", \"true\"]\n      interval: 500us", "", []string{"bad.yml", "b", "interval"}},
		{"missing external secret", "    secrets: [ext]", "  ext:\n    external: true\n", []string{"secret ext declared as external, but could not be found"}},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			tmp := t.TempDir()
			// Service b: an image and a network, unless the case gives its own.
			b := []string{c.svc}
			for _, l := range []string{"    image: ${REGISTRY}/shoal/busybox:latest", "    networks: [net]"} {
				if key, _, _ := strings.Cut(l, ":"); !strings.Contains(c.svc, key+":") {
					b = append(b, l)
				}
			}
			text := fmt.Sprintf(base, strings.Join(b, "\n"))
			if c.top != "" { // more top-level secrets
				text = strings.Replace(text, "secrets:\n  tok:", "secrets:\n"+c.top+"  tok:", 1)
			}
			for name, content := range map[string]string{"bad.yml": text, "tok.txt": "t0k\n", "conf.txt": "c0nf\n"} {
				if err := os.WriteFile(filepath.Join(tmp, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// Whatever a failing case leaves must not spoil the next one.
			t.Cleanup(func() {
				if _, _, err := d.run(tmp, env, 60*time.Second, "stack", "rm", "bad"); err != nil {
					t.Errorf("stack rm bad: %v", err)
				}
				checkNothingLeft(t, d, netsBefore)
			})
			stdout, stderr, err := d.run(tmp, env, 60*time.Second, "stack", "deploy", "-d", "-c", "bad.yml", "bad")
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 1 {
				t.Errorf("exit %v, want status 1\nfile:\n%s\nstdout:\n%s\nstderr:\n%s", err, text, stdout, stderr)
			}
			for _, want := range c.want {
				if !strings.Contains(stderr, want) {
					t.Errorf("the error lacks %q:\n%s", want, stderr)
				}
			}
			if strings.TrimSpace(stdout) != "" {
				t.Errorf("stdout of a refused deploy:\n%s", stdout)
			}
			t.Logf("refused: %s", strings.TrimSpace(stderr))
			for _, kind := range []string{"service", "secret", "config"} {
				if out := d.mustShoal(kind, "ls", "-q"); strings.TrimSpace(out) != "" {
					t.Errorf("the refused deploy created a %s: %s", kind, out)
				}
			}
			if nets := testutil.SortedLines(d.mustShoal("network", "ls", "--format", "{{.Name}}")); !slices.Equal(nets, netsBefore) {
				t.Errorf("the refused deploy changed the networks: %v -> %v", netsBefore, nets)
			}
		})
	}
}

// checkRoll checks a completed start-first update of app_web (3 replicas,
// parallelism 1, delay 2s): 3 to 4 web tasks RUNNING in every sample, one
// new task per slot with the new environment, each started 2s after the
// previous one ran.
func checkRoll(t *testing.T, ctl api.ControlClient, w *taskWatch, oldWeb map[string]bool) {
	t.Helper()
	lo, hi := 1<<30, 0
	for _, n := range w.running {
		lo, hi = min(lo, n), max(hi, n)
	}
	if lo < 3 || hi > 4 {
		t.Errorf("RUNNING web tasks during the start-first update (parallelism 1) went within [%d, %d], want [3, 4]", lo, hi)
	}
	tasks, err := serviceTasks(ctl, "app_web")
	if err != nil {
		t.Fatal(err)
	}
	type newTask struct {
		slot             uint64
		created, running time.Time
	}
	var fresh []newTask
	perSlot := map[uint64]int{}
	for _, tk := range tasks {
		if oldWeb[tk.GetId()] {
			continue
		}
		perSlot[tk.GetSlot()]++
		if !slices.Contains(tk.GetSpec().GetContainer().GetEnv(), "GREETING=changed") {
			t.Errorf("new web task %s lacks GREETING=changed: %v", tk.GetId(), tk.GetSpec().GetContainer().GetEnv())
		}
		if tk.GetStatus().GetState() != api.TaskState_RUNNING {
			t.Errorf("new web task %s (slot %d) is %v", tk.GetId(), tk.GetSlot(), tk.GetStatus().GetState())
			continue
		}
		fresh = append(fresh, newTask{tk.GetSlot(), tk.GetMeta().GetCreatedAt().AsTime(), tk.GetStatus().GetTimestamp().AsTime()})
	}
	if len(perSlot) != 3 {
		t.Errorf("new web tasks in %d slots, want 3: %v", len(perSlot), perSlot)
	}
	for sl, n := range perSlot {
		if n != 1 {
			t.Errorf("slot %d of app_web got %d new tasks in one update, want 1", sl, n)
		}
	}
	sort.Slice(fresh, func(i, j int) bool { return fresh[i].created.Before(fresh[j].created) })
	for i := 1; i < len(fresh); i++ {
		if gap := fresh[i].created.Sub(fresh[i-1].running); gap < 1900*time.Millisecond {
			t.Errorf("web slot %d was started %v after slot %d ran; update_config asks for one at a time, 2s apart", fresh[i].slot, gap, fresh[i-1].slot)
		}
	}
}
