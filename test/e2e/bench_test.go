package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/test/images"
)

// BenchmarkTaskStart measures the time from a CreateService call to every
// replica RUNNING (the agent's timestamp of containerd reporting the process
// started; containerd's own task list is checked to agree), for 1 and 20
// replicas, and beside it the time containerd alone takes to create and
// start as many containers of the same image at once (`ctr run -d`, image
// already pulled), in the same run. The difference per task is shoal's
// overhead.
//
//	go test -run XXX -bench TaskStart -benchtime 5x ./test/e2e/
func BenchmarkTaskStart(b *testing.B) {
	reg := images.StartRegistry(b)
	img := images.PushTest(b, reg, images.Busybox)
	d := newBenchDaemon(b, "--insecure-registry", reg)
	// Pull once so neither side pays for the pull.
	if out, err := exec.Command("ctr", "-n", d.ns, "images", "pull", "--plain-http", img).CombinedOutput(); err != nil {
		b.Fatalf("pull: %v\n%s", err, out)
	}
	base := map[int]time.Duration{1: ctrRun(b, d.ns, img, 1), 20: ctrRun(b, d.ns, img, 20)}
	b.Logf("containerd alone (ctr run -d, in parallel): 1 container %v, 20 containers %v", base[1], base[20])
	for _, replicas := range []int{1, 20} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			var took []time.Duration
			ctl := api.NewControlClient(d.client())
			for i := 0; i < b.N; i++ {
				name := fmt.Sprintf("s%d-%d", replicas, i)
				t0 := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				resp, err := ctl.CreateService(ctx, &api.CreateServiceRequest{Spec: &api.ServiceSpec{
					Annotations: &api.Annotations{Name: name},
					Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: img}},
					Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: uint64(replicas)}},
				}})
				if err != nil {
					b.Fatal(err)
				}
				// The last replica's RUNNING timestamp, written by the agent
				// when containerd reported the process started.
				var last time.Time
				for {
					tasks, err := ctl.ListTasks(ctx, &api.ListTasksRequest{Filters: &api.ListFilters{ServiceIds: []string{resp.Service.Id}}})
					if err != nil {
						b.Fatal(err)
					}
					n := 0
					for _, t := range tasks.Tasks {
						if t.GetStatus().GetState() == api.TaskState_RUNNING {
							n++
							if ts := t.Status.Timestamp.AsTime(); ts.After(last) {
								last = ts
							}
						}
					}
					if n == replicas {
						break
					}
					if ctx.Err() != nil {
						b.Fatalf("%d of %d replicas running after 2 minutes", n, replicas)
					}
					time.Sleep(5 * time.Millisecond)
				}
				cancel()
				took = append(took, last.Sub(t0))
				if got := len(runningIDs(d.ns)); got != replicas {
					b.Fatalf("containerd runs %d containers, the store says %d", got, replicas)
				}
				b.StopTimer()
				d.mustShoal("service", "rm", name)
				for len(runningIDs(d.ns)) > 0 {
					time.Sleep(50 * time.Millisecond)
				}
				b.StartTimer()
			}
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			med := took[len(took)/2]
			b.ReportMetric(float64(med.Milliseconds()), "create-to-running-ms")
			over := (med - base[replicas]) / time.Duration(replicas)
			b.ReportMetric(float64(base[replicas].Milliseconds()), "ctr-run-ms")
			b.ReportMetric(float64(over.Milliseconds()), "overhead-ms/task")
		})
	}
}

// ctrRun times containerd alone creating and starting n containers of img
// at once (median of 3 rounds), then removes them.
func ctrRun(b *testing.B, ns, img string, n int) time.Duration {
	var rounds []time.Duration
	for r := 0; r < 3; r++ {
		t0 := time.Now()
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			go func(i int) {
				out, err := exec.Command("ctr", "-n", ns, "run", "-d", img, fmt.Sprintf("base-%d-%d", r, i), "sleep", "3600").CombinedOutput()
				if err != nil {
					err = fmt.Errorf("%v: %s", err, out)
				}
				errs <- err
			}(i)
		}
		for i := 0; i < n; i++ {
			if err := <-errs; err != nil {
				b.Fatalf("ctr run: %v", err)
			}
		}
		rounds = append(rounds, time.Since(t0))
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("base-%d-%d", r, i)
			_ = exec.Command("ctr", "-n", ns, "tasks", "kill", "-s", "SIGKILL", id).Run()
		}
		time.Sleep(300 * time.Millisecond)
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("base-%d-%d", r, i)
			_ = exec.Command("ctr", "-n", ns, "tasks", "rm", "-f", id).Run()
			_ = exec.Command("ctr", "-n", ns, "containers", "rm", id).Run()
		}
	}
	sort.Slice(rounds, func(i, j int) bool { return rounds[i] < rounds[j] })
	return rounds[len(rounds)/2]
}

// newBenchDaemon starts a single-node swarm for a benchmark.
func newBenchDaemon(b *testing.B, extra ...string) *daemon {
	d := newDaemon(b, extra...)
	d.start()
	d.mustShoal("swarm", "init", "--advertise-addr", d.addr)
	return d
}

func runningIDs(ns string) []string {
	ids, _ := runningIDsOK(ns)
	return ids
}

// runningIDsOK lists running tasks; false when ctr could not answer.
func runningIDsOK(ns string) ([]string, bool) {
	out, err := exec.Command("ctr", "-n", ns, "tasks", "ls").Output()
	if err != nil {
		return nil, false
	}
	var ids []string
	for _, line := range strings.Split(string(out), "\n")[1:] {
		if f := strings.Fields(line); len(f) >= 3 && f[2] == "RUNNING" {
			ids = append(ids, f[0])
		}
	}
	return ids, true
}
