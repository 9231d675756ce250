package lab_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/test/lab"
)

// The two docker CLIs the Engine API tests drive: the 28.2.2 client every machine here has, and Debian's
// docker.io 20.10 client (scripts/install-deps.sh installs it without starting its dockerd).
const (
	docker28   = "/usr/local/bin/docker"
	docker2010 = "/usr/bin/docker"
)

// eaDocker runs one docker CLI against a lab host's Engine API socket (docker.sock next to its control
// socket) from the test process, with its own config directory, bounded by 60 s.
type eaDocker struct {
	t      testing.TB
	config string
}

func (d eaDocker) run(cli string, h *lab.Host, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sock := filepath.Join(filepath.Dir(h.ControlSocket), "docker.sock")
	cmd := exec.CommandContext(ctx, cli, append([]string{"-H", "unix://" + sock}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+d.config, "DOCKER_HOST=", "DOCKER_CONTEXT=", "DOCKER_API_VERSION=")
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s on %s: %w: %s", strings.Join(args, " "), h.Name, err, out)
	}
	return string(out), nil
}

func (d eaDocker) must(cli string, h *lab.Host, args ...string) string {
	d.t.Helper()
	out, err := d.run(cli, h, args...)
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

// TestEngineAPILab: both docker CLIs drive a 3-host lab swarm of real shoald processes (real containerd,
// the overlay, the mesh) through the Engine API alone: docker forms the swarm (init on h1, joins on h2 and
// h3 through their own sockets), lists the nodes, spreads a service over the three (docker node ps shows
// each node's share), drains a node and sees
// its tasks move, promotes and demotes a worker (whose socket then serves, and then refuses, manager
// calls), reads the node events, and removes a node that left.
func TestEngineAPILab(t *testing.T) {
	testutil.RequiresContainerd(t) // and root, for the lab
	for _, cli := range []string{docker28, docker2010} {
		if _, err := os.Stat(cli); err != nil {
			if testutil.Strict() {
				t.Fatalf("%s is missing (scripts/install-deps.sh installs or names it): %v", cli, err)
			}
			t.Skipf("%s is missing: %v", cli, err)
		}
	}
	l := lab.New(t, lab.Config{Hosts: 3, Name: "ea", ShoaldPath: lab.BuildShoald(t), ShoalPath: lab.BuildShoal(t)})
	c := &ovCluster{t: t, l: l}
	c.startRegistry()
	if err := l.StartAll("--insecure-registry", c.registry); err != nil {
		t.Fatal(err)
	}
	h1, h2, h3 := l.Host(1), l.Host(2), l.Host(3)
	d := eaDocker{t: t, config: t.TempDir()}
	start := time.Now().Add(-time.Second)

	// docker 28 inits; 20.10 joins h2 and 28 joins h3, each through the joining node's own socket. The
	// CLIs send their default --listen-addr 0.0.0.0:2377 unless told otherwise (as docker's daemon, shoald
	// listens where the request says): the lab's hosts serve on 4242.
	out := d.must(docker28, h1, "swarm", "init", "--listen-addr", h1.APIAddr, "--advertise-addr", h1.APIAddr)
	if !strings.Contains(out, "Swarm initialized: current node (") {
		t.Fatalf("docker swarm init on h1:\n%s", out)
	}
	token := strings.TrimSpace(d.must(docker2010, h1, "swarm", "join-token", "-q", "worker"))
	for _, j := range []struct {
		cli string
		h   *lab.Host
	}{{docker2010, h2}, {docker28, h3}} {
		out := d.must(j.cli, j.h, "swarm", "join", "--token", token, "--listen-addr", j.h.APIAddr, "--advertise-addr", j.h.APIAddr, h1.APIAddr)
		if strings.TrimSpace(out) != "This node joined a swarm as a worker." {
			t.Fatalf("docker swarm join on %s:\n%s", j.h.Name, out)
		}
	}
	nodes := func(cli string) (string, error) {
		out, err := d.run(cli, h1, "node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}}")
		if err != nil {
			return "", err
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		for i := range lines {
			lines[i] = strings.TrimSpace(lines[i])
		}
		sort.Strings(lines)
		return strings.Join(lines, "\n"), nil
	}
	for _, cli := range []string{docker28, docker2010} {
		lab.WaitFor(t, 60*time.Second, func() error {
			got, err := nodes(cli)
			if err != nil {
				return err
			}
			if want := "h1 Ready Active Leader\nh2 Ready Active\nh3 Ready Active"; got != want {
				return fmt.Errorf("%s node ls:\n%s\nwant:\n%s", cli, got, want)
			}
			return nil
		})
	}
	if out, err := d.run(docker28, h2, "service", "ls"); err == nil || !strings.Contains(out, "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state.") {
		t.Errorf("docker service ls on the worker h2: %v\n%s", err, out)
	}

	// A service spread over the three nodes.
	d.must(docker28, h1, append([]string{"service", "create", "-d", "--name", "spread", "--replicas", "6", c.busybox}, busyboxCmd...)...)
	runningOn := func(cli string) (map[string]int, error) {
		out, err := d.run(cli, h1, "service", "ps", "spread", "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}")
		if err != nil {
			return nil, err
		}
		on := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[1] == "Running" {
				on[f[0]]++
			}
		}
		return on, nil
	}
	waitSpread := func(cli string, want func(map[string]int) error) {
		t.Helper()
		lab.WaitFor(t, 90*time.Second, func() error {
			on, err := runningOn(cli)
			if err != nil {
				return err
			}
			n := 0
			for _, k := range on {
				n += k
			}
			if n != 6 {
				return fmt.Errorf("%d of 6 tasks running: %v", n, on)
			}
			return want(on)
		})
	}
	waitSpread(docker28, func(on map[string]int) error {
		if len(on) != 3 {
			return fmt.Errorf("running on %v, want all three nodes", on)
		}
		return nil
	})
	if out := d.must(docker2010, h1, "service", "ls", "--format", "{{.Name}} {{.Replicas}}"); strings.TrimSpace(out) != "spread 6/6" {
		t.Errorf("docker 20.10 service ls: %q", out)
	}
	// docker node ps: the tasks of one node, by either CLI; "self" is the node the socket belongs to.
	on, err := runningOn(docker28)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ cli, node, host string }{{docker28, "h2", "h2"}, {docker2010, "h3", "h3"}, {docker28, "self", "h1"}} {
		out := d.must(c.cli, h1, "node", "ps", c.node, "--filter", "desired-state=running", "--format", "{{.Name}} {{.Node}} {{.CurrentState}}")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != on[c.host] {
			t.Errorf("%s node ps %s: %d tasks, service ps says %d:\n%s", c.cli, c.node, len(lines), on[c.host], out)
		}
		for _, l := range lines {
			if f := strings.Fields(l); len(f) < 3 || !strings.HasPrefix(f[0], "spread.") || f[1] != c.host || f[2] != "Running" {
				t.Errorf("%s node ps %s: line %q", c.cli, c.node, l)
			}
		}
	}

	// 20.10 drains h3: its tasks move to h1 and h2; then h3 is active again.
	d.must(docker2010, h1, "node", "update", "--availability", "drain", "h3")
	waitSpread(docker2010, func(on map[string]int) error {
		if on["h3"] != 0 {
			return fmt.Errorf("h3 is drained but runs %d tasks: %v", on["h3"], on)
		}
		return nil
	})
	d.must(docker28, h1, "node", "update", "--availability", "active", "h3")
	if out := d.must(docker28, h1, "node", "inspect", "--format", "{{.Spec.Availability}}", "h3"); strings.TrimSpace(out) != "active" {
		t.Errorf("h3's availability after update: %q", out)
	}
	until := strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10)
	out = d.must(docker28, h1, "events", "--filter", "type=node", "--since", strconv.FormatInt(start.Unix(), 10), "--until", until,
		"--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
	for _, want := range []string{"node create h2", "node create h3", "node update h3"} {
		if !strings.Contains(out, want) {
			t.Errorf("docker events --filter type=node lacks %q:\n%s", want, out)
		}
	}

	// Promote h2: its socket serves the manager calls; demote it: it refuses them again.
	if out := d.must(docker28, h1, "node", "promote", "h2"); !strings.Contains(out, "promoted to a manager") {
		t.Errorf("docker node promote h2:\n%s", out)
	}
	lab.WaitFor(t, 60*time.Second, func() error {
		out, err := d.run(docker2010, h2, "node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "h1 Leader") || !strings.Contains(out, "h2 Reachable") {
			return fmt.Errorf("node ls on h2:\n%s", out)
		}
		return nil
	})
	if out := d.must(docker2010, h1, "node", "demote", "h2"); !strings.Contains(out, "demoted in the swarm") {
		t.Errorf("docker node demote h2:\n%s", out)
	}
	lab.WaitFor(t, 60*time.Second, func() error {
		out, err := d.run(docker28, h2, "node", "ls")
		if err == nil || !strings.Contains(out, "This node is not a swarm manager") {
			return fmt.Errorf("node ls on the demoted h2 still answers: %v\n%s", err, out)
		}
		return nil
	})

	// h3 leaves through its own socket; the manager sees it down, and docker node rm removes it.
	if out := d.must(docker28, h3, "swarm", "leave"); strings.TrimSpace(out) != "Node left the swarm." {
		t.Errorf("docker swarm leave on h3:\n%s", out)
	}
	lab.WaitFor(t, 60*time.Second, func() error {
		out, err := d.run(docker2010, h1, "node", "inspect", "--format", "{{.Status.State}}", "h3")
		if err != nil || strings.TrimSpace(out) != "down" {
			return fmt.Errorf("h3 after leave: %v %q", err, out)
		}
		return nil
	})
	if out := d.must(docker2010, h1, "node", "rm", "h3"); strings.TrimSpace(out) != "h3" {
		t.Errorf("docker node rm h3: %q", out)
	}
	waitSpread(docker28, func(on map[string]int) error {
		if on["h3"] != 0 || len(on) != 2 {
			return fmt.Errorf("running on %v, want h1 and h2 only", on)
		}
		return nil
	})
	if out := d.must(docker28, h1, "service", "rm", "spread"); strings.TrimSpace(out) != "spread" {
		t.Errorf("docker service rm spread: %q", out)
	}
	lab.WaitFor(t, 60*time.Second, func() error {
		out, err := d.run(docker28, h1, "service", "ls", "-q")
		if err == nil && strings.TrimSpace(out) != "" {
			err = fmt.Errorf("services left: %q", out)
		}
		return err
	})
}
