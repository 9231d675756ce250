package formatter

import (
	"fmt"
	"strings"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

// DefaultTaskTable is the default format of `service ps` and `node ps`.
const DefaultTaskTable = "table {{.ID}}\t{{.Name}}\t{{.Image}}\t{{.Node}}\t{{.DesiredState}}\t{{.CurrentState}}\t{{.Error}}\t{{.Ports}}"

// TaskHeader titles task columns.
var TaskHeader = Header{
	"ID":           "ID",
	"Name":         "NAME",
	"Image":        "IMAGE",
	"Node":         "NODE",
	"DesiredState": "DESIRED STATE",
	"CurrentState": "CURRENT STATE",
	"Error":        "ERROR",
	"Ports":        "PORTS",
	"Addresses":    "ADDRESSES",
}

// maxErrLength is how much of a task error a truncated list shows.
const maxErrLength = 30

// TaskRow is one line of a task list. Name and Node are computed by the
// caller (slot naming, indentation, node hostnames).
type TaskRow struct {
	t     *api.Task
	name  string
	node  string
	trunc bool
	now   time.Time
}

// NewTaskRow wraps a task for display.
func NewTaskRow(t *api.Task, name, node string, trunc bool, now time.Time) *TaskRow {
	return &TaskRow{t: t, name: name, node: node, trunc: trunc, now: now}
}

// MarshalJSON prints every column.
func (r *TaskRow) MarshalJSON() ([]byte, error) { return marshalRow(r) }

// ID is the task ID, cut to 12 characters unless --no-trunc.
func (r *TaskRow) ID() string {
	if r.trunc {
		return TruncateID(r.t.GetId())
	}
	return r.t.GetId()
}

// Name is web.1, web.<node id>, or " \_ web.1" for an older task of a slot.
func (r *TaskRow) Name() string { return r.name }

// Image is the task's image.
func (r *TaskRow) Image() string {
	image := r.t.GetSpec().GetContainer().GetImage()
	if r.trunc {
		return DisplayImage(image)
	}
	return image
}

// Node is the hostname (or ID with --no-resolve) of the task's node.
func (r *TaskRow) Node() string { return r.node }

// DesiredState is the state the managers want, e.g. Running or Shutdown.
func (r *TaskRow) DesiredState() string { return PrettyState(r.t.GetDesiredState().String()) }

// CurrentState is the observed state and its age: "Running 8 seconds ago".
func (r *TaskRow) CurrentState() string {
	state := PrettyState(r.t.GetStatus().GetState().String())
	ts := r.t.GetStatus().GetTimestamp()
	if ts == nil {
		ts = r.t.GetMeta().GetUpdatedAt()
	}
	if ts == nil {
		return state
	}
	return state + " " + HumanAgo(r.now, ts.AsTime())
}

// Error is the task's error, quoted and cut unless --no-trunc.
func (r *TaskRow) Error() string {
	msg := r.t.GetStatus().GetErr()
	if msg == "" {
		return ""
	}
	if r.trunc {
		msg = Ellipsis(msg, maxErrLength)
	}
	return fmt.Sprintf("%q", msg)
}

// Ports are the ports the task publishes itself (host mode).
func (r *TaskRow) Ports() string { return FormatPorts(r.t.GetStatus().GetPortStatus().GetPorts()) }

// Addresses lists the task's addresses, comma separated, without prefix
// lengths: its overlay addresses (one per network, in the order of its
// networks), or, for a task on no overlay network, its addresses on its
// node's task bridge. Not a Docker column: it lets scripts reach a replica
// directly (`service ps --format '{{.Addresses}}'`).
func (r *TaskRow) Addresses() string {
	var addrs []string
	for _, n := range r.t.GetNetworks() {
		addrs = append(addrs, n.GetAddresses()...)
	}
	if len(addrs) == 0 {
		addrs = r.t.GetStatus().GetContainer().GetAddresses()
	}
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if i := strings.IndexByte(a, '/'); i >= 0 {
			a = a[:i]
		}
		out = append(out, a)
	}
	return strings.Join(out, ",")
}
