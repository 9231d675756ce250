package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/test/images"
)

// BenchmarkTaskStart measures the time from a CreateService call to every
// replica RUNNING (the agent's timestamp of containerd reporting the process
// started; containerd's own task list is checked to agree), for 1 and 20
// replicas. Just before each shoal round, outside the timer, the baseline
// (its median is reported beside shoal's): containerd alone
// creating and starting as many containers of the same image at once through
// its Go client in this process (container with a new overlayfs snapshot,
// runc v2 shim, task with no IO, start, status RUNNING), in the daemon's
// namespace, image already pulled and unpacked; removal is outside both
// timers. The difference per task is shoal's overhead: the control plane
// (raft commit, orchestrator, allocator, scheduler, dispatcher), the agent,
// and what shoal gives a task that the baseline does not (a veth and an
// address in its network namespace, a log driver, a registry manifest
// check). For information it also times `ctr run -d` per container, which
// adds a ctr process per container.
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
	for _, replicas := range []int{1, 20} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			var took, base, forked []time.Duration
			ctl := api.NewControlClient(d.client())
			for i := 0; i < b.N; i++ {
				// The baselines run just before each shoal round, so
				// a change in the machine's load hits all three alike.
				b.StopTimer()
				base = append(base, clientRun(b, d.ns, img, replicas, fmt.Sprintf("%d-%d", replicas, i)))
				forked = append(forked, ctrRun(b, d.ns, img, replicas, fmt.Sprintf("%d-%d", replicas, i)))
				b.StartTimer()
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
			med, medBase := median(took), median(base)
			b.ReportMetric(float64(med.Milliseconds()), "create-to-running-ms")
			over := (med - medBase) / time.Duration(replicas)
			b.ReportMetric(float64(medBase.Milliseconds()), "containerd-client-ms")
			b.ReportMetric(float64(median(forked).Milliseconds()), "ctr-run-ms")
			b.ReportMetric(float64(over.Milliseconds()), "overhead-ms/task")
		})
	}
}

// clientRun times containerd alone creating and starting n containers of
// img at once through its Go client: for each, a container on a new
// overlayfs snapshot with the image's config and `sleep 3600`, the runc v2
// shim, a task with no IO, Start, and a status check that it is RUNNING.
// Removal (kill, delete task, delete container and snapshot) is outside
// the timer.
func clientRun(b *testing.B, ns, img string, n int, tag string) time.Duration {
	c, err := client.New("/run/containerd/containerd.sock")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), 5*time.Minute)
	defer cancel()
	image, err := c.GetImage(ctx, img)
	if err != nil {
		b.Fatal(err)
	}
	if err := image.Unpack(ctx, "overlayfs"); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, n)
	errs := make(chan error, n)
	t0 := time.Now()
	for i := range ids {
		ids[i] = fmt.Sprintf("client-%s-%d", tag, i)
		go func(id string) { errs <- clientStart(ctx, c, image, id) }(ids[i])
	}
	var firstErr error
	for range ids {
		if err := <-errs; err != nil && firstErr == nil {
			firstErr = err
		}
	}
	took := time.Since(t0)
	for _, id := range ids {
		if err := clientRemove(ctx, c, id); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	return took
}

func clientStart(ctx context.Context, c *client.Client, image client.Image, id string) error {
	ctr, err := c.NewContainer(ctx, id,
		client.WithImage(image),
		client.WithSnapshotter("overlayfs"),
		client.WithNewSnapshot(id, image),
		client.WithRuntime("io.containerd.runc.v2", nil),
		client.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("sleep", "3600")),
	)
	if err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		return fmt.Errorf("create task %s: %w", id, err)
	}
	if err := task.Start(ctx); err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return fmt.Errorf("status of %s: %w", id, err)
	}
	if st.Status != client.Running {
		return fmt.Errorf("%s is %s after Start, not running", id, st.Status)
	}
	return nil
}

// clientRemove kills and deletes what clientStart made, whatever part of it
// exists.
func clientRemove(ctx context.Context, c *client.Client, id string) error {
	ctr, err := c.LoadContainer(ctx, id)
	if err != nil {
		return nil // never created
	}
	if task, err := ctr.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil {
			return fmt.Errorf("delete task %s: %w", id, err)
		}
	}
	if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	return nil
}

// ctrRun times `ctr run -d` of n containers of img at once (each forks a
// ctr process), then removes them.
func ctrRun(b *testing.B, ns, img string, n int, tag string) time.Duration {
	ids := make([]string, n)
	errs := make(chan error, n)
	t0 := time.Now()
	for i := range ids {
		ids[i] = fmt.Sprintf("ctr-%s-%d", tag, i)
		go func(id string) {
			out, err := exec.Command("ctr", "-n", ns, "run", "-d", img, id, "sleep", "3600").CombinedOutput()
			if err != nil {
				err = fmt.Errorf("%v: %s", err, out)
			}
			errs <- err
		}(ids[i])
	}
	for range ids {
		if err := <-errs; err != nil {
			b.Fatalf("ctr run: %v", err)
		}
	}
	took := time.Since(t0)
	for _, id := range ids {
		_ = exec.Command("ctr", "-n", ns, "tasks", "rm", "-f", id).Run()
		_ = exec.Command("ctr", "-n", ns, "containers", "rm", id).Run()
	}
	return took
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
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
