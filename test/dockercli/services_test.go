package dockercli

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/test/images"
)

// TestDockerCLIServices: docker service create, ls, ps, inspect (also
// --pretty), update, scale, rollback, logs and rm against one shoald,
// with a busybox image from a loopback registry.
func TestDockerCLIServices(t *testing.T) {
	forEachCLI(t, func(t *testing.T, c cli) {
		reg := images.StartRegistry(t)
		busybox := images.PushTest(t, reg, images.Busybox)
		d := startDaemon(t, c, "")
		d.mustDocker("swarm", "init", "--listen-addr", d.addr, "--advertise-addr", d.addr)

		out := d.mustDocker("service", "create", "-d", "--name", "web", "--replicas", "2", "--no-resolve-image",
			busybox, "sh", "-c", "echo hello from $HOSTNAME; echo second line; sleep 3600")
		id := strings.TrimSpace(out)
		if !regexp.MustCompile(`^[0-9a-z]{10,}$`).MatchString(id) {
			t.Fatalf("docker service create printed %q, not an ID", out)
		}
		waitReplicas := func(want string) {
			t.Helper()
			testutil.EventuallyErr(t, 60*time.Second, 250*time.Millisecond, func() error {
				out, err := d.docker("service", "ls", "--format", "{{.Name}} {{.Mode}} {{.Replicas}} {{.Image}}")
				if err != nil {
					return fmt.Errorf("%v: %s", err, out)
				}
				if line := "web replicated " + want + " " + busybox; strings.TrimSpace(out) != line {
					return fmt.Errorf("service ls shows %q, want %q", strings.TrimSpace(out), line)
				}
				return nil
			}, "the service converges to %s", want)
		}
		waitReplicas("2/2")
		out = d.mustDocker("service", "ls")
		if !regexp.MustCompile(`(?m)^ID\s+NAME\s+MODE\s+REPLICAS\s+IMAGE\s+PORTS\n` + id[:12] + `\s+web\s+replicated\s+2/2\s+` + regexp.QuoteMeta(busybox)).MatchString(out) {
			t.Errorf("docker service ls:\n%s", out)
		}
		out = d.mustDocker("service", "ls", "--filter", "name=nomatch", "-q")
		if strings.TrimSpace(out) != "" {
			t.Errorf("service ls --filter name=nomatch: %q", out)
		}

		out = d.mustDocker("service", "ps", "web", "--format", "{{.Name}} {{.DesiredState}} {{.CurrentState}}")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "web.1 Running Running") || !strings.HasPrefix(lines[1], "web.2 Running Running") {
			t.Errorf("docker service ps web:\n%s", out)
		}
		out = d.mustDocker("service", "ps", "web")
		if !regexp.MustCompile(`(?m)^ID\s+NAME\s+IMAGE\s+NODE\s+DESIRED STATE\s+CURRENT STATE\s+ERROR\s+PORTS\n\w+\s+web\.1\s+` + regexp.QuoteMeta(busybox) + `\s+\S+\s+Running\s+Running`).MatchString(out) {
			t.Errorf("docker service ps web (table):\n%s", out)
		}
		taskID := strings.TrimSpace(strings.Split(d.mustDocker("service", "ps", "-q", "--no-trunc", "web"), "\n")[0])
		if out := d.mustDocker("inspect", "--type", "task", "--format", "{{.ServiceID}} {{.Status.State}}", taskID); strings.TrimSpace(out) != id+" running" {
			t.Errorf("docker inspect task: %q", out)
		}

		out = d.mustDocker("service", "inspect", "--format", "{{.ID}} {{.Spec.Name}} {{.Spec.Mode.Replicated.Replicas}} {{.Spec.TaskTemplate.ContainerSpec.Image}}", "web")
		if strings.TrimSpace(out) != id+" web 2 "+busybox {
			t.Errorf("docker service inspect --format: %q", out)
		}
		out = d.mustDocker("service", "inspect", "--pretty", "web")
		wantLines(t, "docker service inspect --pretty", out, "ID:\t\t"+id, "Name:\t\tweb", "Service Mode:\tReplicated", "Replicas:\t2", "Image:\t\t"+busybox,
			"Args:\t\tsh -c echo hello from $HOSTNAME; echo second line; sleep 3600", "Endpoint Mode:\tvip")

		// Logs: docker's prefix (service.slot.task@node), -t, --tail.
		testutil.EventuallyErr(t, 30*time.Second, 250*time.Millisecond, func() error {
			out, err := d.docker("service", "logs", "web")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			if n := len(regexp.MustCompile(`(?m)^web\.[12]\.\w+@\S+\s+\| hello from \w+$`).FindAllString(out, -1)); n != 2 {
				return fmt.Errorf("service logs has %d hello lines:\n%s", n, out)
			}
			return nil
		}, "docker service logs shows both tasks' output")
		out = d.mustDocker("service", "logs", "--tail", "1", "-t", "--no-task-ids", "web")
		if !regexp.MustCompile(`(?m)\A(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z web\.[12]@\S+\s+\| second line\n){2}\z`).MatchString(out) {
			t.Errorf("docker service logs --tail 1 -t --no-task-ids:\n%s", out)
		}

		// --follow streams until the client goes away.
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		cmd := exec.CommandContext(ctx, d.cli.path, "-H", "unix://"+d.dockerSocket(), "service", "logs", "-f", "--raw", "web")
		cmd.Env = d.dockerEnv
		out1, _ := cmd.CombinedOutput()
		cancel()
		if n := strings.Count(string(out1), "second line\n"); n != 2 || ctx.Err() == nil {
			t.Errorf("docker service logs -f (ended early: %v) shows %d of 2 lines:\n%s", ctx.Err() == nil, n, out1)
		}

		// Scale, update, rollback (to the spec before the update).
		out = d.mustDocker("service", "scale", "-d", "web=3")
		if !strings.Contains(out, "web scaled to 3") {
			t.Errorf("docker service scale: %q", out)
		}
		waitReplicas("3/3")
		out = d.mustDocker("service", "update", "-d", "--env-add", "COLOR=blue", "web")
		if strings.TrimSpace(out) != "web" {
			t.Errorf("docker service update printed %q", out)
		}
		if out := d.mustDocker("service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Env}}", "web"); strings.TrimSpace(out) != "[COLOR=blue]" {
			t.Errorf("env after update: %q", out)
		}
		// The rolling update shuts the old tasks down.
		testutil.EventuallyErr(t, 30*time.Second, 250*time.Millisecond, func() error {
			out, err := d.docker("service", "ps", "--filter", "desired-state=shutdown", "--format", "{{.Name}} {{.DesiredState}}", "web")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if n := strings.Count(out, " Shutdown"); n < 1 || n != len(lines) {
				return fmt.Errorf("service ps --filter desired-state=shutdown:\n%s", out)
			}
			return nil
		}, "service ps --filter desired-state=shutdown lists the updated tasks")
		if out := d.mustDocker("service", "ls", "-q", "--filter", "mode=global"); strings.TrimSpace(out) != "" {
			t.Errorf("service ls --filter mode=global: %q", out)
		}
		if out := d.mustDocker("service", "ls", "-q", "--filter", "mode=replicated", "--filter", "name=we"); strings.TrimSpace(out) != id[:12] {
			t.Errorf("service ls --filter mode=replicated --filter name=we: %q", out)
		}
		d.mustDocker("service", "rollback", "-d", "web")
		if out := d.mustDocker("service", "inspect", "--format", "{{.Spec.Mode.Replicated.Replicas}} {{.Spec.TaskTemplate.ContainerSpec.Env}} {{.PreviousSpec.TaskTemplate.ContainerSpec.Env}}", "web"); strings.TrimSpace(out) != "3 [] [COLOR=blue]" {
			t.Errorf("after rollback: %q", out)
		}
		waitReplicas("3/3")

		// _up-to-date (what the CLI's converge display asks): only the tasks
		// of the current spec, not the ones the update and rollback replaced.
		all, cur := apiTasks(t, d, `{"service":{"web":true}}`), apiTasks(t, d, `{"service":{"web":true},"_up-to-date":{"true":true}}`)
		if len(cur) != 3 || len(all) <= len(cur) {
			t.Errorf("%d tasks, %d up to date (want 3 of more)", len(all), len(cur))
		}

		// Errors in docker's words.
		if out, err := d.docker("service", "inspect", "nosuch"); err == nil || !strings.Contains(out, "nosuch") {
			t.Errorf("inspect of a missing service: %v %s", err, out)
		}

		// Without --no-resolve-image the CLI pins the image by the digest
		// GET /distribution answers.
		d.mustDocker("service", "create", "-d", "--name", "pinned", busybox)
		out = d.mustDocker("service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", "pinned")
		if !regexp.MustCompile(`^` + regexp.QuoteMeta(busybox) + `@sha256:[0-9a-f]{64}$`).MatchString(strings.TrimSpace(out)) {
			t.Errorf("image of a service created with digest resolution: %q", out)
		}
		if out, err := d.docker("service", "create", "-d", "--name", "ghost", reg+"/no/such:image"); err != nil || !strings.Contains(out, "could not be accessed on a registry") {
			t.Errorf("service create with an unknown image: %v\n%s", err, out)
		}
		d.mustDocker("service", "rm", "pinned", "ghost")

		if out := d.mustDocker("service", "rm", "web"); strings.TrimSpace(out) != "web" {
			t.Errorf("docker service rm: %q", out)
		}
		if out := d.mustDocker("service", "ls", "-q"); strings.TrimSpace(out) != "" {
			t.Errorf("service ls after rm: %q", out)
		}
	})
}

// apiTasks asks GET /tasks with the filters over the unix socket.
func apiTasks(t *testing.T, d *daemon, filters string) []map[string]any {
	t.Helper()
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.dockerSocket())
	}}}
	resp, err := c.Get("http://docker/v1.50/tasks?filters=" + url.QueryEscape(filters))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /tasks?filters=%s: %d %v", filters, resp.StatusCode, err)
	}
	return out
}
