package containerd

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/containerd/v2/client"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/internal/hostinfo"
	api "github.com/shoal-project/shoal/proto"
)

// Stats reads the running tasks' containers: CPU, memory and block I/O
// from their cgroup (v1 or v2, through containerd's task metrics), network
// from their namespace's /proc/<pid>/net/dev, all interfaces but lo. With
// taskIDs only those tasks; a task without a running container is left
// out. PreRead/PreCPUNanos are left for the caller.
func (e *Executor) Stats(ctx context.Context, taskIDs []string) ([]*api.TaskStats, error) {
	ctx = e.nsctx(ctx)
	want := map[string]bool{}
	for _, id := range taskIDs {
		want[id] = true
	}
	cs, err := e.client.Containers(ctx, `labels."`+LabelTaskID+`"`)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	mt, _ := hostinfo.MemTotal(hostinfo.Meminfo)
	hostMem := uint64(max(mt, 0))
	var out []*api.TaskStats
	for _, c := range cs {
		info, err := c.Info(ctx, client.WithoutRefreshedMetadata)
		if err != nil {
			continue // removed meanwhile
		}
		id := info.Labels[LabelTaskID]
		if id == "" || len(want) > 0 && !want[id] {
			continue
		}
		st, err := e.readStats(ctx, c)
		if cerrdefs.IsNotFound(err) {
			continue // no task: not running
		}
		if err != nil {
			return nil, fmt.Errorf("task %s: %w", id, err)
		}
		st.TaskId, st.ServiceId, st.NodeId = id, info.Labels[LabelServiceID], info.Labels[LabelNodeID]
		st.ServiceName, st.TaskName = info.Labels[labelSwarmServiceName], info.Labels[labelSwarmTaskName]
		if st.MemoryLimit == 0 || hostMem > 0 && st.MemoryLimit > hostMem {
			st.MemoryLimit = hostMem // no limit: the node's memory, as docker stats shows
		}
		out = append(out, st)
	}
	return out, nil
}

// readStats reads one container's running task.
func (e *Executor) readStats(ctx context.Context, c client.Container) (*api.TaskStats, error) {
	task, err := c.Task(ctx, nil)
	if err != nil {
		return nil, err
	}
	// The reading is stamped half-way through the call: the shim reads
	// the cgroup somewhere inside it, and on a loaded node the call's
	// return alone can lag by tens of milliseconds.
	before := time.Now()
	m, err := task.Metrics(ctx)
	if err != nil {
		return nil, err
	}
	read := before.Add(time.Since(before) / 2)
	data, err := typeurl.UnmarshalAny(m.Data)
	if err != nil {
		return nil, fmt.Errorf("decode task metrics: %w", err)
	}
	st := &api.TaskStats{Read: timestamppb.New(read)}
	switch d := data.(type) {
	case *v1.Metrics:
		fromCgroup1(st, d)
	case *v2.Metrics:
		fromCgroup2(st, d)
	default:
		return nil, fmt.Errorf("task metrics of an unknown type %T", data)
	}
	if pid := task.Pid(); pid > 0 {
		st.NetRxBytes, st.NetTxBytes, _ = netDev(fmt.Sprintf("/proc/%d/net/dev", pid))
	}
	return st, nil
}

func fromCgroup1(st *api.TaskStats, m *v1.Metrics) {
	st.CpuNanos = m.GetCPU().GetUsage().GetTotal()
	mem := m.GetMemory()
	st.MemoryUsage = mem.GetUsage().GetUsage()
	if inactive := mem.GetTotalInactiveFile(); inactive < st.MemoryUsage {
		st.MemoryUsage -= inactive
	}
	st.MemoryLimit = mem.GetUsage().GetLimit()
	for _, e := range m.GetBlkio().GetIoServiceBytesRecursive() {
		switch strings.ToLower(e.GetOp()) {
		case "read":
			st.BlockReadBytes += e.GetValue()
		case "write":
			st.BlockWriteBytes += e.GetValue()
		}
	}
	st.Pids = m.GetPids().GetCurrent()
}

func fromCgroup2(st *api.TaskStats, m *v2.Metrics) {
	st.CpuNanos = m.GetCPU().GetUsageUsec() * 1000
	mem := m.GetMemory()
	st.MemoryUsage = mem.GetUsage()
	if inactive := mem.GetInactiveFile(); inactive < st.MemoryUsage {
		st.MemoryUsage -= inactive
	}
	st.MemoryLimit = mem.GetUsageLimit()
	for _, e := range m.GetIo().GetUsage() {
		st.BlockReadBytes += e.GetRbytes()
		st.BlockWriteBytes += e.GetWbytes()
	}
	st.Pids = m.GetPids().GetCurrent()
}

// netDev sums the received and sent bytes of every interface but lo in a
// /proc/<pid>/net/dev file.
func netDev(path string) (rx, tx uint64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue // the two header lines, and loopback
		}
		fields := strings.Fields(rest)
		if len(fields) < 9 {
			continue
		}
		r, err1 := strconv.ParseUint(fields[0], 10, 64)
		t, err2 := strconv.ParseUint(fields[8], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		rx, tx = rx+r, tx+t
	}
	return rx, tx, sc.Err()
}
