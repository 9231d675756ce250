package containerd

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	api "github.com/shoal-project/shoal/proto"
)

// Stats reads a running task's cgroup: a busy loop shows CPU time growing
// about as fast as the wall clock, 32 MiB in the task's /dev/shm (memory, as its pages are) shows that much
// memory in use, and the limit is the task's own.
func TestStatsOfRunningTasks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 90*time.Second)
	busy := e.task(busyboxRef, "sh", "-c", "while :; do :; done")
	mem := e.task(busyboxRef, "sh", "-c", `dd if=/dev/zero of=/dev/shm/held bs=1M count=32 && sleep 600`)
	mem.Slot = 2
	mem.Spec.Resources = &api.ResourceRequirements{Limits: &api.Resources{MemoryBytes: 256 << 20}}
	for _, task := range []*api.Task{busy, mem} {
		c := e.controller(task)
		if err := c.Prepare(ctx); err != nil {
			t.Fatalf("Prepare: %v", err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatalf("Start: %v", err)
		}
	}
	eventually(t, 60*time.Second, "the task holds its 32 MiB", func() bool {
		st, err := e.ex.Stats(ctx, []string{mem.Id})
		return err == nil && len(st) == 1 && st[0].GetMemoryUsage() >= 32<<20
	})
	first, err := e.ex.Stats(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	second, err := e.ex.Stats(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	byID := func(sts []*api.TaskStats) map[string]*api.TaskStats {
		m := map[string]*api.TaskStats{}
		for _, s := range sts {
			m[s.GetTaskId()] = s
		}
		return m
	}
	a, b := byID(first), byID(second)
	if len(a) != 2 || len(b) != 2 {
		t.Fatalf("stats of %d and %d tasks, want 2", len(a), len(b))
	}
	s0, s1 := a[busy.Id], b[busy.Id]
	wall := s1.GetRead().AsTime().Sub(s0.GetRead().AsTime())
	cpu := time.Duration(s1.GetCpuNanos() - s0.GetCpuNanos())
	// One core busy: close to 100 % on an idle machine, but a loaded
	// 2-core one gives the loop its share only (16 % at load 7): the
	// bounds say the counter moves and stays within one core.
	if pct := float64(cpu) / float64(wall) * 100; pct < 2 || pct > 110 {
		t.Fatalf("busy task: %v CPU over %v = %.0f %%, want about 100 %%", cpu, wall, pct)
	}
	if s1.GetServiceName() != "web" || s1.GetTaskName() == "" || s1.GetNodeId() != e.cfg.NodeID || s1.GetPids() < 1 {
		t.Fatalf("busy task's stats: %v", s1)
	}
	m := b[mem.Id]
	if m.GetMemoryLimit() != 256<<20 {
		t.Fatalf("memory limit %d, want %d", m.GetMemoryLimit(), 256<<20)
	}
	if m.GetMemoryUsage() < 32<<20 || m.GetMemoryUsage() > 200<<20 {
		t.Fatalf("memory use %d, want 32..200 MiB", m.GetMemoryUsage())
	}
	if s1.GetMemoryLimit() == 0 || s1.GetMemoryLimit() < 256<<20 {
		t.Fatalf("no-limit task's limit %d, want the node's memory", s1.GetMemoryLimit())
	}

	// The same figures through the Prometheus collector, and the pull.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e.ex.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "task_id" || lp.GetName() == "result" {
					key += "/" + lp.GetValue()
				}
			}
			got[key] = m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	if got["shoal_image_pulls_total/pulled"] < 1 || got["shoal_image_pull_bytes_total"] <= 0 || got["shoal_image_pull_seconds"] < 1 {
		t.Errorf("pull metrics: %v", got)
	}
	if got["shoal_task_memory_usage_bytes/"+mem.Id] < 32<<20 || got["shoal_task_cpu_seconds_total/"+busy.Id] <= 0 || got["shoal_task_stats_errors"] != 0 {
		t.Errorf("task metrics: %v", got)
	}
}

func TestNetDev(t *testing.T) {
	p := filepath.Join(t.TempDir(), "dev")
	data := `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0:  5000      50    0    0    0     0          0         0     7000      70    0    0    0     0       0          0
  eth1:   100       1    0    0    0     0          0         0      200       2    0    0    0     0       0          0
`
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	rx, tx, err := netDev(p)
	if err != nil || rx != 5100 || tx != 7200 {
		t.Fatalf("netDev = %d, %d, %v; want 5100, 7200", rx, tx, err)
	}
}
