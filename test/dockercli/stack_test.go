package dockercli

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
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
