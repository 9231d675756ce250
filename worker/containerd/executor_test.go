package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/vishvananda/netlink"
	"google.golang.org/protobuf/types/known/durationpb"

	api "github.com/shoal-project/shoal/proto"
	testimages "github.com/shoal-project/shoal/test/images"
	"github.com/shoal-project/shoal/worker"
)

func TestRunToCompletion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, err, logs := e.run(e.task(busyboxRef, "sh", "-c", "echo hello from shoal"))
	if err != nil {
		t.Fatalf("Wait = %v, want nil", err)
	}
	if logs != "hello from shoal\n" {
		t.Errorf("logs = %q", logs)
	}
	st, err := c.Status(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if st.ContainerId != c.id || st.ExitCode != 0 || len(st.Addresses) != 1 {
		t.Errorf("status = %v", st)
	}
	// Wait again: the same answer, without blocking.
	if err := c.Wait(ctxT(t, 5*time.Second)); err != nil {
		t.Errorf("second Wait = %v", err)
	}
	if err := c.Start(ctxT(t, 5*time.Second)); !errors.Is(err, worker.ErrTaskStarted) {
		t.Errorf("Start after exit = %v, want ErrTaskStarted", err)
	}
	if err := c.Prepare(ctxT(t, 5*time.Second)); !errors.Is(err, worker.ErrTaskPrepared) {
		t.Errorf("Prepare again = %v, want ErrTaskPrepared", err)
	}
}

func TestNonZeroExit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, err, _ := e.run(e.task(busyboxRef, "sh", "-c", "exit 7"))
	var ee *worker.ExitError
	if !errors.As(err, &ee) || ee.Code != 7 {
		t.Fatalf("Wait = %v, want exit 7", err)
	}
	st, err := c.Status(ctxT(t, 10*time.Second))
	if err != nil || st.ExitCode != 7 {
		t.Errorf("status = %v, %v; want exit code 7", st, err)
	}
}

func TestKillSeenByWait(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 60*time.Second)

	// A kill from outside the executor (the OOM killer, an admin).
	c := e.controller(e.task(busyboxRef)) // image default: sleep 3600
	mustPrepareStart(t, c)
	st, err := c.Status(ctx)
	if err != nil || st.Pid <= 0 {
		t.Fatalf("status = %v, %v", st, err)
	}
	waited := make(chan error, 1)
	go func() { waited <- c.Wait(ctx) }()
	if err := syscall.Kill(int(st.Pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; exitCode(err) != 137 {
		t.Fatalf("Wait after kill = %v, want exit 137", err)
	}

	// Terminate while Wait runs in another goroutine.
	c2 := e.controller(e.task(busyboxRef))
	mustPrepareStart(t, c2)
	go func() { waited <- c2.Wait(ctx) }()
	start := time.Now()
	if err := c2.Terminate(ctx); err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	if err := <-waited; exitCode(err) != 137 {
		t.Fatalf("Wait after Terminate = %v, want exit 137", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Terminate took %s", d)
	}
	if err := c2.Terminate(ctx); err != nil {
		t.Errorf("second Terminate = %v", err)
	}
}

func mustPrepareStart(t *testing.T, c *controller) {
	t.Helper()
	ctx := ctxT(t, 60*time.Second)
	if err := c.Prepare(ctx); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 60*time.Second)

	t.Run("stop signal honoured", func(t *testing.T) {
		task := e.task(busyboxRef, "sh", "-c", `trap 'echo got USR1; exit 3' USR1; echo ready; while true; do sleep 0.05; done`)
		task.Spec.Container.StopSignal = "SIGUSR1"
		task.Spec.Container.StopGracePeriod = durationpb.New(20 * time.Second)
		c := e.controller(task)
		mustPrepareStart(t, c)
		eventually(t, 10*time.Second, "the trap to be set", func() bool { return strings.Contains(e.logs(c), "ready") })
		start := time.Now()
		if err := c.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Shutdown took %s: the stop signal was not honoured", d)
		}
		if err := c.Wait(ctx); exitCode(err) != 3 {
			t.Errorf("Wait = %v, want exit 3 from the trap", err)
		}
		if !strings.Contains(e.logs(c), "got USR1") {
			t.Errorf("logs = %q", e.logs(c))
		}
	})

	t.Run("killed after grace", func(t *testing.T) {
		// sleep as PID 1 has no handler, so SIGTERM does nothing.
		task := e.task(busyboxRef, "sleep", "3600")
		grace := 700 * time.Millisecond
		task.Spec.Container.StopGracePeriod = durationpb.New(grace)
		c := e.controller(task)
		mustPrepareStart(t, c)
		start := time.Now()
		if err := c.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		d := time.Since(start)
		if d < grace {
			t.Errorf("Shutdown returned after %s, before the grace period %s", d, grace)
		}
		if d > grace+10*time.Second {
			t.Errorf("Shutdown took %s", d)
		}
		if err := c.Wait(ctx); exitCode(err) != 137 {
			t.Errorf("Wait = %v, want exit 137 (SIGKILL)", err)
		}
		if err := c.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown of an exited task = %v", err)
		}
	})
}

func TestSpecInsideContainer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bindDir := filepath.Join(t.TempDir(), "bind")
	if err := os.MkdirAll(bindDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bindDir, "in.txt"), []byte("from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `echo "foo=$FOO path=$PATH"; echo "args=$0 $1"; echo "cwd=$(pwd)"; echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"
echo "hostname=$(hostname)"; touch /rootfs-file 2>/dev/null && echo rootfs=rw || echo rootfs=ro
echo x > /scratch/f && echo tmpfs=ok; echo "bind=$(cat /data/in.txt)"
echo "hosts=$(grep -c "$(hostname)" /etc/hosts) resolv=$(cat /etc/resolv.conf)"; echo "label-env=$TASK_NAME"`
	task := e.task(busyboxRef)
	cs := task.Spec.Container
	cs.Command = []string{"sh", "-c", script}
	cs.Args = []string{"zero", "one"}
	cs.Env = []string{"FOO=bar", "TASK_NAME={{.Task.Name}}"}
	cs.Dir = "/tmp"
	cs.User = "shoal"
	cs.Groups = []string{"nogroup"}
	cs.Hostname = "{{.Service.Name}}-{{.Task.Slot}}"
	cs.ReadOnly = true
	cs.Mounts = []*api.Mount{
		{Type: api.Mount_TMPFS, Target: "/scratch", TmpfsSizeBytes: 1 << 20, TmpfsMode: 0o1777},
		{Type: api.Mount_BIND, Source: bindDir, Target: "/data", ReadOnly: true},
	}
	cs.Labels = map[string]string{"user.label": "x", LabelTaskID: "spoofed"}
	task.Spec.Resources = &api.ResourceRequirements{Limits: &api.Resources{MemoryBytes: 64 << 20, NanoCpus: 500_000_000, Pids: 50}}

	c, err, logs := e.run(task)
	if err != nil {
		t.Fatalf("Wait = %v; logs:\n%s", err, logs)
	}
	for _, want := range []string{
		"foo=bar path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
		"args=zero one\n",
		"cwd=/tmp\n",
		"uid=1000 gid=1000 groups=1000 65534\n",
		"hostname=web-1\n",
		"rootfs=ro\n",
		"tmpfs=ok\n",
		"bind=from the host\n",
		"hosts=1 resolv=nameserver 192.0.2.53\n",
		"label-env=web.1." + task.Id + "\n",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("output lacks %q; output:\n%s", want, logs)
		}
	}
	// The limits, read from the task's cgroups on the host (they stay until
	// Remove); this host's runc mounts no cgroupfs view into containers.
	for file, want := range map[string]string{
		"memory/" + e.ns + "/" + c.id + "/memory.limit_in_bytes": fmt.Sprint(64 << 20),
		"cpu/" + e.ns + "/" + c.id + "/cpu.cfs_quota_us":         "50000",
		"cpu/" + e.ns + "/" + c.id + "/cpu.cfs_period_us":        "100000",
		"pids/" + e.ns + "/" + c.id + "/pids.max":                "50",
	} {
		b, err := os.ReadFile("/sys/fs/cgroup/" + file)
		if err != nil {
			t.Errorf("cgroup limit: %v", err)
		} else if got := strings.TrimSpace(string(b)); got != want {
			t.Errorf("%s = %s, want %s", file, got, want)
		}
	}
	ctr, err := e.cl.LoadContainer(ctxT(t, 10*time.Second), c.id)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := ctr.Labels(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if labels[LabelTaskID] != task.Id || labels[LabelServiceID] != task.ServiceId || labels[LabelNodeID] != e.cfg.NodeID || labels["user.label"] != "x" ||
		labels["com.docker.swarm.task.id"] != task.Id || labels["com.docker.swarm.task.name"] != TaskName(task) || labels["com.docker.swarm.service.name"] != task.GetServiceAnnotations().GetName() {
		t.Errorf("labels = %v", labels)
	}
}

func TestTemplatedMountSource(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	task := e.task(busyboxRef, "cat", "/data/id")
	base := t.TempDir()
	if err := os.MkdirAll(filepath.Join(base, "web-"+task.Id), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "web-"+task.Id, "id"), []byte("templated\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	task.Spec.Container.Mounts = []*api.Mount{{Type: api.Mount_BIND, Source: base + "/{{.Service.Name}}-{{.Task.ID}}", Target: "/data"}}
	_, err, logs := e.run(task)
	if err != nil || logs != "templated\n" {
		t.Fatalf("Wait = %v, logs %q", err, logs)
	}
}

func TestOOMKill(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// tail buffers /dev/zero looking for a newline that never comes.
	task := e.task(busyboxRef, "tail", "/dev/zero")
	task.Spec.Resources = &api.ResourceRequirements{Limits: &api.Resources{MemoryBytes: 8 << 20}}
	_, err, _ := e.run(task)
	var ee *worker.ExitError
	if !errors.As(err, &ee) || ee.Code != 137 || ee.Cause == nil || !strings.Contains(ee.Cause.Error(), "OOM") {
		t.Fatalf("Wait = %v, want exit 137 caused by an OOM kill", err)
	}
}

func TestNetworking(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 90*time.Second)

	srvTask := e.task(whoamiRef)
	srvTask.Spec.Container.Env = []string{"TASK_NAME={{.Task.Name}}"}
	srv := e.controller(srvTask)
	mustPrepareStart(t, srv)
	st, err := srv.Status(ctx)
	if err != nil || len(st.Addresses) != 1 {
		t.Fatalf("server status = %v, %v", st, err)
	}
	srvAddr := netip.MustParsePrefix(st.Addresses[0])
	if !netip.MustParsePrefix(e.ex.Subnet()).Contains(srvAddr.Addr()) {
		t.Fatalf("server address %s outside the node subnet %s", srvAddr, e.ex.Subnet())
	}

	// The host reaches the task through the bridge (an address inside the
	// bridge this test made).
	url := "http://" + srvAddr.Addr().String() + "/"
	var body string
	eventually(t, 20*time.Second, "whoami to answer on "+url, func() bool {
		body, err = httpGet(url)
		return err == nil
	})
	if !strings.Contains(body, "task: web.1."+srvTask.Id+"\n") || !strings.Contains(body, "hostname: "+srvTask.Id[:12]+"\n") {
		t.Errorf("whoami said %q", body)
	}

	// Another task, with another address, reaches the first one.
	cli := e.task(busyboxRef, "sh", "-c", "ip -4 -o addr show eth0; ip route; wget -q -O- "+url)
	c, werr, logs := e.run(cli)
	if werr != nil {
		t.Fatalf("client Wait = %v; logs:\n%s", werr, logs)
	}
	cst, err := c.Status(ctx)
	if err != nil || len(cst.Addresses) != 1 {
		t.Fatalf("client status = %v, %v", cst, err)
	}
	if cst.Addresses[0] == st.Addresses[0] {
		t.Fatalf("both tasks have address %s", cst.Addresses[0])
	}
	cliAddr := netip.MustParsePrefix(cst.Addresses[0]).Addr().String()
	gw := netip.MustParsePrefix(e.ex.Subnet()).Addr().Next().String()
	for _, want := range []string{"inet " + cst.Addresses[0], "default via " + gw, "task: web.1." + srvTask.Id, "remote: " + cliAddr + ":", "requests: 2"} {
		if !strings.Contains(logs, want) {
			t.Errorf("client output lacks %q:\n%s", want, logs)
		}
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(ctx); err != nil {
		t.Errorf("whoami after SIGTERM: %v, want a clean exit", err)
	}
}

func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestReattach(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 60*time.Second)

	running := e.task(busyboxRef)
	mustPrepareStart(t, e.controller(running))
	exited := e.task(busyboxRef, "sh", "-c", "exit 5")
	c := e.controller(exited)
	mustPrepareStart(t, c)
	eventually(t, 10*time.Second, "the short task to exit", func() bool {
		st, err := c.Status(ctx)
		return err == nil && st.ExitCode == 5
	})
	before, _ := e.controller(running).Status(ctx)

	// The daemon restarts: a fresh executor on the same namespace and dir.
	e.ex.Close()
	ex2, err := New(ctx, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.ex = ex2
	ids, err := ex2.Tasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	want := []string{running.Id, exited.Id}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("Tasks = %v, want %v", ids, want)
	}
	if ex2.Subnet() != e.ex.Subnet() {
		t.Errorf("subnet changed across restart")
	}

	r := e.controller(running)
	if err := r.Prepare(ctx); !errors.Is(err, worker.ErrTaskPrepared) {
		t.Errorf("Prepare = %v, want ErrTaskPrepared", err)
	}
	if err := r.Start(ctx); !errors.Is(err, worker.ErrTaskStarted) {
		t.Errorf("Start = %v, want ErrTaskStarted", err)
	}
	after, err := r.Status(ctx)
	if err != nil || after.Pid != before.Pid || after.Pid == 0 || !slices.Equal(after.Addresses, before.Addresses) {
		t.Errorf("status after restart = %v (%v), before %v", after, err, before)
	}
	waited := make(chan error, 1)
	go func() { waited <- r.Wait(ctx) }()
	select {
	case err := <-waited:
		t.Fatalf("Wait on a running task returned %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := r.Terminate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; exitCode(err) != 137 {
		t.Errorf("re-attached Wait = %v, want exit 137", err)
	}

	x := e.controller(exited)
	if err := x.Start(ctx); !errors.Is(err, worker.ErrTaskStarted) {
		t.Errorf("Start of an exited task = %v, want ErrTaskStarted", err)
	}
	if err := x.Wait(ctx); exitCode(err) != 5 {
		t.Errorf("Wait of a task that exited while down = %v, want exit 5", err)
	}
	// A new task still gets a fresh address.
	n := e.controller(e.task(busyboxRef))
	mustPrepareStart(t, n)
	nst, _ := n.Status(ctx)
	if len(nst.Addresses) != 1 || nst.Addresses[0] == before.Addresses[0] {
		t.Errorf("new task address %v collides with %v", nst.Addresses, before.Addresses)
	}
}

func TestRemoveLeavesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 60*time.Second)
	task := e.task(busyboxRef, "sh", "-c", "echo bye")
	task.Spec.Container.Mounts = []*api.Mount{{Type: api.Mount_VOLUME, Target: "/anon"}}
	c := e.controller(task)
	mustPrepareStart(t, c)
	running := e.controller(e.task(busyboxRef))
	mustPrepareStart(t, running)
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	for _, x := range []*controller{c, running} { // exited and running
		id := x.id
		hostVeth, _ := vethName(e.bridge, id)
		if _, err := netlink.LinkByName(hostVeth); err != nil {
			t.Fatalf("veth %s missing before Remove: %v", hostVeth, err)
		}
		if err := x.Remove(ctx); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if _, err := e.cl.LoadContainer(ctx, id); !cerrdefs.IsNotFound(err) {
			t.Errorf("container %s still there: %v", id, err)
		}
		if _, err := e.cl.SnapshotService(DefaultSnapshotter).Stat(ctx, id); !cerrdefs.IsNotFound(err) {
			t.Errorf("snapshot %s still there: %v", id, err)
		}
		for _, p := range []string{e.cfg.recordLogPath(id), e.cfg.logPath(id), e.cfg.netnsPath(id), e.cfg.taskDir(id)} {
			if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s still there: %v", p, err)
			}
		}
		if _, err := netlink.LinkByName(hostVeth); err == nil {
			t.Errorf("veth %s still there", hostVeth)
		}
		if _, ok := e.ex.net.Address(id); ok {
			t.Errorf("address of %s not released", id)
		}
		if err := x.Remove(ctx); err != nil {
			t.Errorf("second Remove = %v", err)
		}
		if _, err := x.Status(ctx); !errors.Is(err, worker.ErrTaskNotFound) {
			t.Errorf("Status after Remove = %v, want ErrTaskNotFound", err)
		}
	}
	if ids, err := e.ex.Tasks(ctx); err != nil || len(ids) != 0 {
		t.Errorf("Tasks after Remove = %v, %v", ids, err)
	}
}

func TestRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 60*time.Second)

	missing := registryHost + "/shoal/nope:1"
	err := e.controller(e.task(missing)).Prepare(ctx)
	if !worker.IsRejected(err) || !strings.Contains(err.Error(), "No such image: "+missing) {
		t.Errorf("missing image: Prepare = %v, want a rejection naming the image", err)
	}
	empty := testimages.StartRegistry(t) + "/app:1"
	err = e.controller(e.task(empty)).Prepare(ctx)
	if !worker.IsRejected(err) || !strings.Contains(err.Error(), "No such image: "+empty) {
		t.Errorf("empty registry: Prepare = %v, want a rejection naming the image", err)
	}
	// A registry that does not answer is transient, not a rejection.
	err = e.controller(e.task("127.0.0.1:1/shoal/busybox:latest")).Prepare(ctx)
	if err == nil || worker.IsRejected(err) {
		t.Errorf("unreachable registry: Prepare = %v, want a transient error", err)
	}

	bad := map[string]func(*api.Task){
		"bind source missing": func(t *api.Task) {
			t.Spec.Container.Mounts = []*api.Mount{{Type: api.Mount_BIND, Source: "/nonexistent/x", Target: "/x"}}
		},
		"bad stop signal": func(t *api.Task) { t.Spec.Container.StopSignal = "SIGNOPE" },
		"bad template":    func(t *api.Task) { t.Spec.Container.Hostname = "{{.Nope" },
		"tiny memory": func(t *api.Task) {
			t.Spec.Resources = &api.ResourceRequirements{Limits: &api.Resources{MemoryBytes: 1024}}
		},
		"unknown user":         func(t *api.Task) { t.Spec.Container.User = "nosuchuser" },
		"invalid reference":    func(t *api.Task) { t.Spec.Container.Image = "UPPER/Case::x" },
		"relative working dir": func(t *api.Task) { t.Spec.Container.Dir = "rel" },
	}
	for name, mutate := range bad {
		task := e.task(busyboxRef)
		mutate(task)
		c := e.controller(task)
		if err := c.Prepare(ctx); !worker.IsRejected(err) {
			t.Errorf("%s: Prepare = %v, want a rejection", name, err)
		}
		if _, err := e.cl.LoadContainer(ctx, task.Id); !cerrdefs.IsNotFound(err) {
			t.Errorf("%s: container left behind", name)
		}
		if _, ok := e.ex.net.Address(task.Id); ok {
			t.Errorf("%s: address left allocated", name)
		}
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d, err := e.ex.Describe(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if d.Hostname != "testhost" || d.Platform.Os != runtime.GOOS || d.Platform.Architecture != runtime.GOARCH ||
		d.Resources.NanoCpus != int64(runtime.NumCPU())*1e9 || d.Resources.MemoryBytes < 64<<20 || d.Engine.EngineVersion != "test" {
		t.Errorf("Describe = %v", d)
	}
}

func TestNewFailsClearlyWithoutContainerd(t *testing.T) {
	t.Parallel()
	_, err := New(ctxT(t, 30*time.Second), Config{Address: filepath.Join(t.TempDir(), "nope.sock"), DataDir: t.TempDir(), Bridge: "shbnone"})
	if err == nil || !strings.Contains(err.Error(), "containerd is not reachable") {
		t.Fatalf("New = %v", err)
	}
	if _, lerr := netlink.LinkByName("shbnone"); lerr == nil {
		t.Error("a bridge was created although New failed")
	}
}

func TestStartFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 60*time.Second)
	c := e.controller(e.task(busyboxRef, "/no/such/binary"))
	if err := c.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	err := c.Start(ctx)
	if err == nil || worker.IsRejected(err) || !strings.Contains(err.Error(), "/no/such/binary") {
		t.Fatalf("Start = %v, want an error naming the binary", err)
	}
	if err := c.Remove(ctx); err != nil {
		t.Fatalf("Remove after a failed start: %v", err)
	}
}

func TestLogsFollowRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 60*time.Second)
	c := e.controller(e.task(busyboxRef, "sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"))
	mustPrepareStart(t, c)
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var got []string
	err := c.Logs(fctx, worker.LogOptions{Follow: true, Tail: -1}, func(m *api.LogMessage) error {
		got = append(got, string(m.Data))
		if len(got) == 5 {
			cancel()
		}
		return nil
	})
	if err != nil || len(got) < 5 || got[0] != "tick 1\n" || got[4] != "tick 5\n" {
		t.Fatalf("Logs = %v, lines %q", err, got)
	}
}
