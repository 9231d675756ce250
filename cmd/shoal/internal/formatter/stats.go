package formatter

import (
	"fmt"

	units "github.com/docker/go-units"

	api "github.com/shoal-project/shoal/proto"
)

// StatsTableFormat is `shoal stats`' default table: docker stats' columns,
// with the task's node after its name.
const StatsTableFormat = "table {{.ID}}\t{{.Name}}\t{{.Node}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"

// StatsHeader titles the stats columns as docker stats does.
var StatsHeader = Header{
	"ID": "TASK ID", "Container": "TASK", "Name": "NAME", "Node": "NODE", "Service": "SERVICE",
	"CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
	"NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
}

// StatsRow is one task's reading, with docker stats' template fields.
type StatsRow struct {
	s        *api.TaskStats
	nodeName string
	noTrunc  bool
}

// NewStatsRow makes the row of one reading; nodeName is the task's node's
// hostname ("" shows its ID).
func NewStatsRow(s *api.TaskStats, nodeName string, noTrunc bool) StatsRow {
	return StatsRow{s: s, nodeName: nodeName, noTrunc: noTrunc}
}

// MarshalJSON prints every column, as docker stats' {{json .}} does.
func (r StatsRow) MarshalJSON() ([]byte, error) { return marshalRow(r) }

// ID is the task ID (12 characters unless --no-trunc).
func (r StatsRow) ID() string {
	if r.noTrunc {
		return r.s.GetTaskId()
	}
	return TruncateID(r.s.GetTaskId())
}

// Container is the task ID as given (docker: the name or ID asked for).
func (r StatsRow) Container() string { return r.ID() }

// Name is the task's name (service.slot.taskid, as its container is named).
func (r StatsRow) Name() string { return r.s.GetTaskName() }

// Node is the node's hostname (its ID when unknown).
func (r StatsRow) Node() string {
	if r.nodeName != "" {
		return r.nodeName
	}
	return r.s.GetNodeId()
}

// Service is the task's service name.
func (r StatsRow) Service() string { return r.s.GetServiceName() }

// cpu is the CPU use between the node's last two readings, in percent of
// one core; ok is false when there is only one reading.
func (r StatsRow) cpu() (pct float64, ok bool) {
	s := r.s
	if s.GetPreRead() == nil || s.GetCpuNanos() < s.GetPreCpuNanos() {
		return 0, false
	}
	wall := s.GetRead().AsTime().Sub(s.GetPreRead().AsTime())
	if wall <= 0 {
		return 0, false
	}
	return float64(s.GetCpuNanos()-s.GetPreCpuNanos()) / float64(wall.Nanoseconds()) * 100, true
}

// CPUPerc is CPU as docker prints it ("12.34%", "--" without two readings).
func (r StatsRow) CPUPerc() string {
	pct, ok := r.cpu()
	if !ok {
		return "--"
	}
	return fmt.Sprintf("%.2f%%", pct)
}

// MemUsage is "use / limit" in binary units, as docker prints it.
func (r StatsRow) MemUsage() string {
	return units.BytesSize(float64(r.s.GetMemoryUsage())) + " / " + units.BytesSize(float64(r.s.GetMemoryLimit()))
}

// MemPerc is the use in percent of the limit.
func (r StatsRow) MemPerc() string {
	if r.s.GetMemoryLimit() == 0 {
		return "--"
	}
	return fmt.Sprintf("%.2f%%", float64(r.s.GetMemoryUsage())/float64(r.s.GetMemoryLimit())*100)
}

// NetIO is "received / sent" in decimal units, as docker prints it.
func (r StatsRow) NetIO() string {
	return units.HumanSizeWithPrecision(float64(r.s.GetNetRxBytes()), 3) + " / " + units.HumanSizeWithPrecision(float64(r.s.GetNetTxBytes()), 3)
}

// BlockIO is "read / written" in decimal units.
func (r StatsRow) BlockIO() string {
	return units.HumanSizeWithPrecision(float64(r.s.GetBlockReadBytes()), 3) + " / " + units.HumanSizeWithPrecision(float64(r.s.GetBlockWriteBytes()), 3)
}

// PIDs is the number of processes.
func (r StatsRow) PIDs() string { return fmt.Sprintf("%d", r.s.GetPids()) }
