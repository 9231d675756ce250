package containerd

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/worker/containerd/logdriver"
)

// BenchmarkCreateToRunning measures Prepare (image already pulled: a
// manifest check against the registry, snapshot, network, container) plus
// Start (process created and running), the path from an assignment to a
// RUNNING task without health checks. Removal is outside the timer.
//
//	go test -run '^$' -bench CreateToRunning -benchtime 20x ./worker/containerd/
func BenchmarkCreateToRunning(b *testing.B) {
	e := newEnv(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	warm := e.task(busyboxRef)
	c := e.controller(warm)
	if err := c.Prepare(ctx); err != nil {
		b.Fatal(err)
	}
	_ = c.Remove(ctx)

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := e.controller(e.task(busyboxRef))
		if err := c.Prepare(ctx); err != nil {
			b.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := c.Remove(ctx); err != nil {
			b.Fatal(err)
		}
		c.Close()
		b.StartTimer()
	}
}

// BenchmarkLogPathMemory runs tasks that log a line a second (50, or
// $SHOAL_BENCH_TASKS) through the real shim and log driver, and reports
// the mean memory per task of the log path (the shoal-logdriver process
// beside each task) and, for scale, of the shim, from
// /proc/PID/smaps_rollup with all tasks running. PSS divides each shared
// page among the processes that map it: it is what one more task costs.
//
//	go test -run '^$' -bench LogPathMemory -benchtime 1x ./worker/containerd/
func BenchmarkLogPathMemory(b *testing.B) {
	n := 50
	if s := os.Getenv("SHOAL_BENCH_TASKS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	e := newEnv(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var ctrls []*controller
	defer func() {
		for _, c := range ctrls {
			_ = c.Remove(ctx)
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c := e.controller(e.task(busyboxRef, "sh", "-c", "i=0; while :; do i=$((i+1)); echo tick $i; echo tock $i >&2; sleep 1; done"))
		if err := c.Prepare(ctx); err != nil {
			b.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			b.Fatal(err)
		}
		ctrls = append(ctrls, c)
	}
	time.Sleep(3 * time.Second) // every task has logged a few lines
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var drv, shim memStat
		pids := driverPids()
		for _, c := range ctrls {
			pid := pids[e.cfg.recordLogPath(c.id)]
			if pid == 0 {
				b.Fatalf("no log driver for task %s", c.id)
			}
			d, err := readMemStat(pid)
			if err != nil {
				b.Fatal(err)
			}
			s, err := readMemStat(ppidOf(pid))
			if err != nil {
				b.Fatal(err)
			}
			drv.add(d)
			shim.add(s)
		}
		b.ReportMetric(float64(drv.pss)/float64(n), "driver-PSS-KiB/task")
		b.ReportMetric(float64(drv.rss)/float64(n), "driver-RSS-KiB/task")
		b.ReportMetric(float64(shim.pss)/float64(n), "shim-PSS-KiB/task")
	}
	b.StopTimer()
}

type memStat struct{ rss, pss int }

func (m *memStat) add(o memStat) { m.rss += o.rss; m.pss += o.pss }

func readMemStat(pid int) (memStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return memStat{}, err
	}
	var m memStat
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "Rss:":
			m.rss = v
		case "Pss:":
			m.pss = v
		}
	}
	return m, nil
}

// driverPids maps the log path of each running log driver to its pid.
func driverPids() map[string]int {
	out := map[string]int{}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		for i := 1; i+1 < len(args); i += 2 {
			if args[i] == logdriver.ArgPath {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				out[args[i+1]] = pid
			}
		}
	}
	return out
}

func ppidOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}
