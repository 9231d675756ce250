package formatter

import (
	"sort"

	api "github.com/shoal-project/shoal/proto"
)

// DefaultNodeTable is `node ls`'s default format.
const DefaultNodeTable = "table {{.ID}} {{if .Self}}*{{else}} {{ end }}\t{{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}\t{{.EngineVersion}}"

// NodeHeader titles `node ls` columns.
var NodeHeader = Header{
	"ID":            "ID",
	"Self":          "",
	"Hostname":      "HOSTNAME",
	"Status":        "STATUS",
	"Availability":  "AVAILABILITY",
	"ManagerStatus": "MANAGER STATUS",
	"EngineVersion": "ENGINE VERSION",
}

// NodeRow is one line of `node ls`.
type NodeRow struct {
	n    *api.Node
	self bool
}

// NodeRows wraps nodes sorted by hostname; selfID marks the local node.
func NodeRows(nodes []*api.Node, selfID string) []any {
	sorted := append([]*api.Node(nil), nodes...)
	sort.SliceStable(sorted, func(i, j int) bool {
		return NaturalLess(sorted[i].GetDescription().GetHostname(), sorted[j].GetDescription().GetHostname())
	})
	rows := make([]any, 0, len(sorted))
	for _, n := range sorted {
		rows = append(rows, &NodeRow{n: n, self: n.GetId() == selfID})
	}
	return rows
}

// MarshalJSON prints every column.
func (r *NodeRow) MarshalJSON() ([]byte, error) { return marshalRow(r) }

// ID is the full node ID.
func (r *NodeRow) ID() string { return r.n.GetId() }

// Self tells whether this is the node the CLI talks to.
func (r *NodeRow) Self() bool { return r.self }

// Hostname is the node's hostname.
func (r *NodeRow) Hostname() string { return r.n.GetDescription().GetHostname() }

// Status is Ready, Down, Unknown or Disconnected.
func (r *NodeRow) Status() string { return PrettyState(r.n.GetStatus().GetState().String()) }

// Availability is Active, Pause or Drain.
func (r *NodeRow) Availability() string { return PrettyState(r.n.GetSpec().GetAvailability().String()) }

// ManagerStatus is Leader, Reachable or Unreachable, with the disk fault
// when there is one ("Unreachable (disk full)"); blank for workers.
func (r *NodeRow) ManagerStatus() string { return ManagerStatus(r.n) }

// EngineVersion is the shoald version the node runs.
func (r *NodeRow) EngineVersion() string { return r.n.GetDescription().GetEngine().GetEngineVersion() }

// TLSStatus is not tracked by shoal yet; kept for templates written for Docker.
func (r *NodeRow) TLSStatus() string { return "" }

// ManagerStatus says Leader, Reachable, Unreachable or Unknown for managers
// and nothing for workers. A manager whose raft log cannot be written gets
// the fault in parentheses, e.g. "Unreachable (disk full)": it takes no
// part in raft until its disk takes writes again (shoal's own state; Docker
// has none like it).
func ManagerStatus(n *api.Node) string {
	ms := n.GetManagerStatus()
	if ms == nil {
		return ""
	}
	s := "Unknown"
	switch {
	case ms.GetLeader():
		s = "Leader"
	case ms.GetReachability() == api.Reachability_REACHABLE:
		s = "Reachable"
	case ms.GetReachability() == api.Reachability_UNREACHABLE:
		s = "Unreachable"
	}
	if f := ms.GetDiskFault(); f != "" {
		s += " (" + f + ")"
	}
	return s
}
