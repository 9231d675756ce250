package containerd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
	testimages "github.com/shoal-project/shoal/test/images"
	"github.com/shoal-project/shoal/worker"
)

// Health checks against real containers. Timings are short (probes every
// 200 ms); the bounds asserted are loose upper limits, as the machine is
// shared.

func shellCheck(cmd string, interval time.Duration, retries int32) *api.HealthConfig {
	return &api.HealthConfig{
		Test:     []string{"CMD-SHELL", cmd},
		Interval: durationpb.New(interval),
		Timeout:  durationpb.New(5 * time.Second),
		Retries:  retries,
	}
}

// stateDir makes a host directory holding the file "ok", bind-mounted at
// /state, so a test turns a task unhealthy by removing the file.
func stateDir(t *testing.T, task *api.Task) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ok"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	task.Spec.Container.Mounts = append(task.Spec.Container.Mounts, &api.Mount{Type: api.Mount_BIND, Source: dir, Target: "/state", ReadOnly: true})
	return dir
}

func isUnhealthyExit(err error) bool {
	var ee *worker.ExitError
	return errors.As(err, &ee) && ee.Code == 137 && ee.Cause != nil && strings.Contains(err.Error(), "container unhealthy")
}

func monitorRunning(c *controller) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mon == nil {
		return false
	}
	select {
	case <-c.mon.done:
		return false
	default:
		return true
	}
}

func TestHealthStartWaitsForHealthy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 90*time.Second)

	t.Run("Start returns once the probe passes", func(t *testing.T) {
		task := e.task(busyboxRef, "sh", "-c", "sleep 1; touch /tmp/ready; exec sleep 3600")
		task.Spec.Container.Healthcheck = shellCheck("test -f /tmp/ready", 200*time.Millisecond, 3)
		task.Spec.Container.Healthcheck.StartPeriod = durationpb.New(10 * time.Second)
		task.Spec.Container.StopGracePeriod = durationpb.New(300 * time.Millisecond)
		c := e.controller(task)
		if err := c.Prepare(ctx); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := c.Start(ctx); err != nil {
			t.Fatalf("Start: %v", err)
		}
		if d := time.Since(start); d < 900*time.Millisecond || d > 15*time.Second {
			t.Fatalf("Start returned after %s; the probe passes only after 1s", d)
		}
		if !monitorRunning(c) {
			t.Fatal("no probes after Start")
		}
		waited := make(chan error, 1)
		go func() { waited <- c.Wait(ctx) }()
		select {
		case err := <-waited:
			t.Fatalf("Wait on a healthy task returned %v", err)
		case <-time.After(time.Second): // five probes, all passing
		}
		if err := c.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if monitorRunning(c) {
			t.Error("probes still running after Shutdown")
		}
		// sleep ignores SIGTERM: killed after the grace period, not unhealthy.
		if err := <-waited; exitCode(err) != 137 || isUnhealthyExit(err) {
			t.Errorf("Wait after Shutdown = %v, want a plain exit 137", err)
		}
	})

	t.Run("probes run as the container's process", func(t *testing.T) {
		task := e.task(busyboxRef, "sleep", "3600")
		cs := task.Spec.Container
		cs.User, cs.Dir, cs.Env = "shoal", "/tmp", []string{"FOO=bar"}
		// One failure is fatal: Start only succeeds if the first probe passes.
		cs.Healthcheck = shellCheck(`[ "$(id -u)" = 1000 ] && [ "$FOO" = bar ] && [ "$(pwd)" = /tmp ] || { echo "uid=$(id -u) foo=$FOO pwd=$(pwd)"; exit 1; }`, 100*time.Millisecond, 1)
		c := e.controller(task)
		mustPrepareStart(t, c)
		if err := c.Terminate(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestHealthNeverHealthy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 90*time.Second)

	t.Run("retries after the start period", func(t *testing.T) {
		task := e.task(busyboxRef, "sleep", "3600")
		hc := shellCheck("echo not ready yet; exit 1", 200*time.Millisecond, 3)
		hc.StartPeriod = durationpb.New(time.Second)
		task.Spec.Container.Healthcheck = hc
		c := e.controller(task)
		if err := c.Prepare(ctx); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err := c.Start(ctx)
		d := time.Since(start)
		if err == nil || !errors.Is(err, errUnhealthy) || err.Error() != "container unhealthy: not ready yet" {
			t.Fatalf("Start = %v, want container unhealthy: not ready yet", err)
		}
		// start_period + retries*interval, plus the probes' own time.
		if d < time.Second || d > 1600*time.Millisecond+10*time.Second {
			t.Errorf("Start failed after %s", d)
		}
		st, serr := c.Status(ctx)
		if serr != nil || st.ExitCode != 137 {
			t.Errorf("status = %v, %v; want the container killed", st, serr)
		}
		if werr := c.Wait(ctx); !isUnhealthyExit(werr) {
			t.Errorf("Wait = %v, want exit 137 caused by container unhealthy", werr)
		}
		if monitorRunning(c) {
			t.Error("probes still running")
		}
	})

	t.Run("probe timeout", func(t *testing.T) {
		task := e.task(busyboxRef, "sleep", "3600")
		hc := shellCheck("sleep 30", 100*time.Millisecond, 1)
		hc.Timeout = durationpb.New(300 * time.Millisecond)
		task.Spec.Container.Healthcheck = hc
		c := e.controller(task)
		if err := c.Prepare(ctx); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err := c.Start(ctx)
		if err == nil || err.Error() != "container unhealthy: Health check exceeded timeout (300ms)" {
			t.Fatalf("Start = %v", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("a 300ms probe timeout took %s", d)
		}
	})

	t.Run("Start honours its context", func(t *testing.T) {
		task := e.task(busyboxRef, "sleep", "3600")
		task.Spec.Container.Healthcheck = shellCheck("exit 1", 100*time.Millisecond, 3)
		task.Spec.Container.Healthcheck.StartPeriod = durationpb.New(time.Hour)
		c := e.controller(task)
		if err := c.Prepare(ctx); err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
		defer cancel()
		if err := c.Start(sctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Start = %v, want the context's deadline", err)
		}
		if monitorRunning(c) {
			t.Error("probes still running after an interrupted Start")
		}
		if err := c.Terminate(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("exit before healthy", func(t *testing.T) {
		task := e.task(busyboxRef, "sh", "-c", "sleep 0.3; exit 4")
		task.Spec.Container.Healthcheck = shellCheck("exit 1", 100*time.Millisecond, 3)
		task.Spec.Container.Healthcheck.StartPeriod = durationpb.New(time.Hour)
		c := e.controller(task)
		if err := c.Prepare(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); exitCode(err) != 4 {
			t.Fatalf("Start = %v, want exit 4", err)
		}
		if err := c.Wait(ctx); exitCode(err) != 4 {
			t.Errorf("Wait = %v, want exit 4", err)
		}
	})
}

func TestHealthUnhealthyLater(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 90*time.Second)
	task := e.task(busyboxRef, "sleep", "3600")
	dir := stateDir(t, task)
	task.Spec.Container.Healthcheck = shellCheck("test -f /state/ok || { echo ok is gone; exit 1; }", 200*time.Millisecond, 2)
	c := e.controller(task)
	mustPrepareStart(t, c)
	waited := make(chan error, 1)
	go func() { waited <- c.Wait(ctx) }()
	select {
	case err := <-waited:
		t.Fatalf("Wait on a healthy task returned %v", err)
	case <-time.After(600 * time.Millisecond):
	}
	if err := os.Remove(filepath.Join(dir, "ok")); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	select {
	case err := <-waited:
		if !isUnhealthyExit(err) || !strings.Contains(err.Error(), "ok is gone") {
			t.Fatalf("Wait = %v, want exit 137 caused by container unhealthy", err)
		}
		if d := time.Since(removed); d > 15*time.Second {
			t.Errorf("killed %s after turning unhealthy", d)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("an unhealthy task was not killed")
	}
	if monitorRunning(c) {
		t.Error("probes still running after the exit")
	}
}

func TestHealthFromImage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 90*time.Second)
	base, err := testimages.Build(ctx, testimages.Busybox)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := base.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config.Healthcheck = &v1.HealthConfig{
		Test: []string{"CMD-SHELL", "echo image probe failed; exit 1"}, Interval: 200 * time.Millisecond, Retries: 2,
	}
	img, err := mutate.ConfigFile(base, cf)
	if err != nil {
		t.Fatal(err)
	}
	ref := registryHost + "/shoal/busybox-health-" + randHex(6) + ":latest"
	if err := testimages.Push(ctx, img, ref, true); err != nil {
		t.Fatal(err)
	}

	t.Run("image healthcheck honoured", func(t *testing.T) {
		c := e.controller(e.task(ref))
		if err := c.Prepare(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err == nil || err.Error() != "container unhealthy: image probe failed" {
			t.Fatalf("Start = %v, want the image's probe to fail", err)
		}
	})
	t.Run("NONE disables it", func(t *testing.T) {
		task := e.task(ref)
		task.Spec.Container.Healthcheck = &api.HealthConfig{Test: []string{"NONE"}}
		c := e.controller(task)
		mustPrepareStart(t, c)
		if monitorRunning(c) {
			t.Error("probes run with NONE")
		}
		// For four of the image's intervals, no probe runs and the task
		// keeps running.
		testutil.ConsistentlyErr(t, 800*time.Millisecond, 50*time.Millisecond, func() error {
			if monitorRunning(c) {
				return errors.New("probes run with NONE")
			}
			if st, err := c.Status(ctx); err != nil || st.Pid == 0 || st.ExitCode != 0 {
				return fmt.Errorf("status = %v, %v", st, err)
			}
			return nil
		}, "the task running without probes")
		if err := c.Terminate(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("spec test over the image's, interval inherited", func(t *testing.T) {
		task := e.task(ref)
		task.Spec.Container.Healthcheck = &api.HealthConfig{Test: []string{"CMD", "true"}}
		c := e.controller(task)
		if err := c.Prepare(ctx); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Start took %s: the image's 200ms interval was not inherited", d)
		}
		if !monitorRunning(c) {
			t.Error("no probes")
		}
	})
}

func TestHealthResumesAfterRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 90*time.Second)
	task := e.task(busyboxRef, "sleep", "3600")
	dir := stateDir(t, task)
	task.Spec.Container.Healthcheck = shellCheck("test -f /state/ok", 200*time.Millisecond, 2)
	c := e.controller(task)
	mustPrepareStart(t, c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if monitorRunning(c) {
		t.Fatal("probes still running after Close")
	}

	// The daemon restarts.
	e.ex.Close()
	ex2, err := New(ctx, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.ex = ex2
	r := e.controller(task)
	if err := r.Start(ctx); !errors.Is(err, worker.ErrTaskStarted) {
		t.Fatalf("Start = %v, want ErrTaskStarted", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- r.Wait(ctx) }()
	eventually(t, 10*time.Second, "Wait to resume the probes", func() bool { return monitorRunning(r) })
	select {
	case err := <-waited:
		t.Fatalf("Wait on a healthy task returned %v", err)
	case <-time.After(800 * time.Millisecond): // four passing probes
	}
	if err := os.Remove(filepath.Join(dir, "ok")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		if !isUnhealthyExit(err) {
			t.Fatalf("Wait = %v, want exit 137 caused by container unhealthy", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the re-attached controller did not kill an unhealthy task")
	}
}
