package dockercli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-project/shoal/test/lab"
)

// benchServices is the number of services `service ls` lists.
const benchServices = 1000

// BenchmarkServiceLs: `docker service ls` (docker 28, and Debian's 20.10
// when installed) against `shoal service ls`, against the same shoald with
// 1,000 services of no replicas (no containers: the manager's objects
// only). Each iteration runs every CLI once, alternately, and once more
// with a filter that matches nothing (-empty: the CLI's fixed cost); the
// metrics are the medians of the wall time of each process, from exec to
// exit (the CLI's start, its version ping, the calls and the table).
func BenchmarkServiceLs(b *testing.B) {
	d := startDaemon(b, docker28, "")
	d.mustDocker("swarm", "init", "--listen-addr", d.addr, "--advertise-addr", d.addr)
	createServices(b, d, benchServices)
	shoal := lab.BuildShoal(b)

	type runner struct {
		name  string
		cmd   func(args ...string) *exec.Cmd
		empty bool // list nothing: the CLI's fixed cost
		took  []time.Duration
	}
	dockerCmd := func(path string) func(args ...string) *exec.Cmd {
		return func(args ...string) *exec.Cmd {
			c := exec.Command(path, append([]string{"-H", "unix://" + d.dockerSocket(), "service", "ls"}, args...)...)
			c.Env = d.dockerEnv
			return c
		}
	}
	type lister struct {
		name string
		cmd  func(args ...string) *exec.Cmd
	}
	clis := []lister{
		{"docker28", dockerCmd(docker28.path)},
		{"shoal", func(args ...string) *exec.Cmd {
			return exec.Command(shoal, append([]string{"-H", "unix://" + filepath.Join(d.dir, "ctl.sock"), "service", "ls"}, args...)...)
		}},
	}
	if _, err := os.Stat(docker2010.path); err == nil {
		clis = append(clis, lister{"docker20.10", dockerCmd(docker2010.path)})
	}
	var runners []*runner
	for _, c := range clis {
		runners = append(runners, &runner{name: c.name, cmd: c.cmd}, &runner{name: c.name + "-empty", cmd: c.cmd, empty: true})
	}
	for b.Loop() {
		for _, r := range runners {
			var cmd *exec.Cmd
			want := benchServices + 1 // a header and one line per service: the same table both ways
			if r.empty {
				cmd, want = r.cmd("--filter", "name=nomatch"), 1
			} else {
				cmd = r.cmd()
			}
			start := time.Now()
			out, err := cmd.CombinedOutput()
			took := time.Since(start)
			if err != nil {
				b.Fatalf("%s service ls: %v\n%s", r.name, err, out)
			}
			if n := strings.Count(string(out), "\n"); n != want {
				b.Fatalf("%s service ls printed %d lines, want %d:\n%.500s", r.name, n, want, out)
			}
			r.took = append(r.took, took)
		}
	}
	for _, r := range runners {
		slices.Sort(r.took)
		b.ReportMetric(float64(r.took[len(r.took)/2].Microseconds())/1000, r.name+"-median-ms")
	}
}

// createServices creates n services of no replicas through the Engine API,
// four at a time.
func createServices(b *testing.B, d *daemon, n int) {
	b.Helper()
	c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.dockerSocket())
	}}}
	defer c.CloseIdleConnections()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	next := make(chan int)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				body := fmt.Sprintf(`{"Name":"svc-%04d","Labels":{"bench":"ls"},"TaskTemplate":{"ContainerSpec":{"Image":"busybox:latest","Command":["sleep","3600"]}},"Mode":{"Replicated":{"Replicas":0}}}`, i)
				resp, err := c.Post("http://docker/v1.50/services/create", "application/json", strings.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				msg, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					errs <- fmt.Errorf("create svc-%04d: %d %s", i, resp.StatusCode, msg)
					return
				}
			}
		}()
	}
	go func() {
		defer close(next)
		for i := range n {
			select {
			case next <- i:
			case err := <-errs:
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}
