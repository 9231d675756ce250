package lab_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/test/lab"
)

// prometheusBin is Debian's prometheus; its service is never started.
const prometheusBin = "/usr/bin/prometheus"

// labProm is a prometheus process in the lab's Outside namespace, scraping
// every host's --metrics-addr each second.
type labProm struct {
	t    *testing.T
	addr string // in Outside
	http *http.Client
	log  testutil.LogBuffer // prometheus's output
}

func startLabProm(t *testing.T, l *lab.Lab, targets []string) *labProm {
	t.Helper()
	if _, err := os.Stat(prometheusBin); err != nil {
		if testutil.Strict() {
			t.Fatalf("prometheus is not installed (scripts/install-deps.sh installs it): %v", err)
		}
		t.Skipf("prometheus is not installed: %v", err)
	}
	dir := t.TempDir()
	quoted := make([]string, len(targets))
	for i, a := range targets {
		quoted[i] = strconv.Quote(a)
	}
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: shoal\n    static_configs:\n      - targets: [%s]\n", strings.Join(quoted, ", "))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &labProm{t: t, addr: net.JoinHostPort(l.Outside.Addr.String(), "9090")}
	p.http = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return l.Outside.DialContext(ctx, "tcp", addr)
		}}}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := l.Outside.Command(ctx, prometheusBin, "--config.file", filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path", filepath.Join(dir, "data"), "--web.listen-address", p.addr)
	cmd.Stdout, cmd.Stderr = &p.log, &p.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("prometheus log:\n%s", p.log.String())
		}
	})
	return p
}

// sample is one series of an instant query.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s sample) value() float64 {
	v, _ := strconv.ParseFloat(fmt.Sprint(s.Value[1]), 64)
	return v
}

// query runs an instant PromQL query through prometheus' HTTP API.
func (p *labProm) query(q string) ([]sample, error) {
	resp, err := p.http.Get("http://" + p.addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []sample `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("%s: %v", q, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("%s: %s", q, body.Error)
	}
	return body.Data.Result, nil
}

// scalar is the value of a query with one series.
func (p *labProm) scalar(q string) (float64, error) {
	r, err := p.query(q)
	if err != nil {
		return 0, err
	}
	if len(r) != 1 {
		return 0, fmt.Errorf("%s: %d series: %v", q, len(r), r)
	}
	return r[0].value(), nil
}

// A real prometheus scrapes three managers' --metrics-addr: every target is
// up, the running tasks it reads per service are what `service ls` shows,
// a task's memory grows there as its container allocates, and after the
// leader is killed its HTTP API shows the new leader and the
// leader change.
func TestPrometheusScrapesTheSwarm(t *testing.T) {
	c := newOvCluster(t, 3, "--metrics-addr", "0.0.0.0:9323")
	var targets []string
	for _, h := range c.l.Hosts {
		targets = append(targets, h.Addr.String()+":9323")
	}
	p := startLabProm(t, c.l, targets)
	h1 := c.l.Host(1)
	for _, id := range []string{"h2", "h3"} {
		c.sh(h1, "node", "promote", id)
	}
	lab.WaitFor(t, 60*time.Second, func() error {
		if v, err := p.scalar(`count(up == 1)`); err != nil || v != 3 {
			return fmt.Errorf("targets up: %v %v", v, err)
		}
		if v, err := p.scalar(`sum(swarm_node_manager)`); err != nil || v != 3 {
			return fmt.Errorf("managers: %v %v", v, err)
		}
		return nil
	})

	c.sh(h1, "service", "create", "-d", "--name", "web", "--replicas", "3", c.busybox, busyboxCmd[0], busyboxCmd[1], busyboxCmd[2])
	c.sh(h1, "service", "create", "-d", "--name", "solo", c.busybox, busyboxCmd[0], busyboxCmd[1], busyboxCmd[2])
	lab.WaitFor(t, 90*time.Second, func() error {
		out, err := c.try(h1, "service", "ls", "--format", "{{.Name}} {{.Replicas}}")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "web 3/3") || !strings.Contains(out, "solo 1/1") {
			return fmt.Errorf("service ls:\n%s", out)
		}
		for name, want := range map[string]float64{"web": 3, "solo": 1} {
			// Every manager exports it (their stores are replicas): each must agree.
			r, err := p.query(fmt.Sprintf(`shoal_service_replicas_running{service_name=%q}`, name))
			if err != nil {
				return err
			}
			if len(r) != 3 {
				return fmt.Errorf("%s: %d managers export its replicas", name, len(r))
			}
			for _, s := range r {
				if s.value() != want {
					return fmt.Errorf("%s: %s says %v running, service ls %v", name, s.Metric["instance"], s.value(), want)
				}
			}
		}
		return nil
	})

	// shoal stats on one manager lists every running task of the swarm,
	// on whichever node it runs, with the node's name.
	lab.WaitFor(t, 30*time.Second, func() error {
		ps, err := c.try(h1, "service", "ps", "--no-trunc", "--filter", "desired-state=running", "--format", "{{.ID}} {{.Node}}", "web", "solo")
		if err != nil {
			return err
		}
		stats, err := c.try(h1, "stats", "--no-stream", "--no-trunc", "--format", "{{.ID}} {{.Node}} {{.CPUPerc}}")
		if err != nil {
			return err
		}
		want := strings.Fields(ps)
		got := strings.Fields(stats)
		if len(want) != 8 || len(got) != 12 {
			return fmt.Errorf("service ps:\n%s\nstats:\n%s", ps, stats)
		}
		nodes := map[string]bool{}
		for i := 0; i < len(want); i += 2 {
			if !strings.Contains(stats, want[i]+" "+want[i+1]+" ") {
				return fmt.Errorf("stats has no %s on %s:\n%s", want[i], want[i+1], stats)
			}
			nodes[want[i+1]] = true
		}
		if len(nodes) < 2 {
			return fmt.Errorf("all tasks on %v: the test needs them spread", nodes)
		}
		return nil
	})

	// A task's memory grows in prometheus when its container allocates:
	// 32 MiB into /dev/shm once the test creates /tmp/more in it. The test
	// asks for 24 MiB more, not 32: the kernel may reclaim some of the
	// task's other pages meanwhile (CI saw 29.9 MiB more for the 32 written).
	c.sh(h1, "service", "create", "-d", "--name", "mem", c.busybox, "sh", "-c",
		`trap "exit 0" TERM; while [ ! -e /tmp/more ]; do sleep 0.2; done; dd if=/dev/zero of=/dev/shm/a bs=1M count=32; sleep 86400 & wait`)
	var memTask, memNode string
	lab.WaitFor(t, 90*time.Second, func() error {
		out, err := c.try(h1, "service", "ps", "--no-trunc", "--filter", "desired-state=running", "--format", "{{.ID}} {{.Node}} {{.CurrentState}}", "mem")
		if err != nil {
			return err
		}
		f := strings.Fields(out)
		if len(f) < 3 || f[2] != "Running" {
			return fmt.Errorf("mem: %q", out)
		}
		memTask, memNode = f[0], f[1]
		return nil
	})
	memQuery := fmt.Sprintf(`shoal_task_memory_usage_bytes{task_id=%q}`, memTask)
	var small float64
	lab.WaitFor(t, 30*time.Second, func() error {
		v, err := p.scalar(memQuery)
		small = v
		return err
	})
	if small >= 16<<20 {
		t.Fatalf("mem task uses %.0f bytes before allocating", small)
	}
	host := c.hostByName(memNode)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ctr", "-n", host.ContainerdNamespace, "tasks", "exec", "--exec-id", "more", memTask, "touch", "/tmp/more").CombinedOutput(); err != nil {
		t.Fatalf("ctr exec: %v\n%s", err, out)
	}
	lab.WaitFor(t, 30*time.Second, func() error {
		if v, err := p.scalar(memQuery); err != nil || v < small+24<<20 {
			return fmt.Errorf("mem task: %.0f bytes (was %.0f): %v", v, small, err)
		}
		return nil
	})

	// Kill the leader; prometheus shows one leader again among the
	// survivors, and the survivors' leader change.
	r, err := p.query(`swarm_manager_leader == 1`)
	if err != nil || len(r) != 1 {
		t.Fatalf("the leader: %v %v", r, err)
	}
	leaderAddr := r[0].Metric["instance"]
	var leader *lab.Host
	for _, h := range c.l.Hosts {
		if h.Addr.String()+":9323" == leaderAddr {
			leader = h
		}
	}
	if leader == nil {
		t.Fatalf("no host at %s", leaderAddr)
	}
	before, err := p.scalar(`max(shoal_raft_leader_changes_total)`)
	if err != nil {
		t.Fatal(err)
	}
	if err := leader.Kill(); err != nil {
		t.Fatal(err)
	}
	lab.WaitFor(t, 60*time.Second, func() error {
		if v, err := p.scalar(`up{instance="` + leaderAddr + `"}`); err != nil || v != 0 {
			return fmt.Errorf("killed leader up: %v %v", v, err)
		}
		r, err := p.query(`swarm_manager_leader == 1`)
		if err != nil {
			return err
		}
		if len(r) != 1 || r[0].Metric["instance"] == leaderAddr {
			return fmt.Errorf("leaders: %v", r)
		}
		changes, err := p.query(`shoal_raft_leader_changes_total and on(instance) up == 1`)
		if err != nil {
			return err
		}
		if len(changes) != 2 {
			return fmt.Errorf("leader changes of %d survivors: %v", len(changes), changes)
		}
		for _, s := range changes {
			if s.value() <= before-1 || s.value() < 2 {
				return fmt.Errorf("%s saw %v leader changes (max before the kill: %v)", s.Metric["instance"], s.value(), before)
			}
		}
		return nil
	})
}
