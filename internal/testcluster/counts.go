package testcluster

import (
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// TaskQuery selects what CountTasks counts: the tasks of ServiceIDs.
type TaskQuery struct {
	ServiceIDs []string
	// Image: TaskCounts.RunningImage counts the RUNNING tasks of this
	// image.
	Image string
	// Drained are node IDs: TaskCounts.OnDrained and DesiredOnDrained
	// count the tasks there.
	Drained []string
}

// TaskCounts are the tasks of a TaskQuery by what they do. Every count
// but Total is of tasks desired RUNNING.
type TaskCounts struct {
	Total int
	// Placed tasks have a node and are ASSIGNED or further.
	Placed int
	// Running tasks are RUNNING, RunningImage those of the query's image.
	Running, RunningImage int
	// OnDrained are placed on a node of the query's Drained;
	// DesiredOnDrained have such a node, whatever their state.
	OnDrained, DesiredOnDrained int
	// UpdatesCompleted counts the services whose update has COMPLETED.
	UpdatesCompleted int
}

// CountTasks counts the tasks of q in tx. Managers in processes of their
// own count on their side (ProcCluster.CountTasks): a million tasks do
// not cross a pipe at every poll.
func CountTasks(tx raftstore.ReadTx, q TaskQuery) TaskCounts {
	drained := make(map[string]bool, len(q.Drained))
	for _, id := range q.Drained {
		drained[id] = true
	}
	var n TaskCounts
	for _, sid := range q.ServiceIDs {
		if tx.Service(sid).GetUpdateStatus().GetState() == api.UpdateStatus_COMPLETED {
			n.UpdatesCompleted++
		}
		for _, t := range tx.TasksByService(sid) {
			n.Total++
			if t.DesiredState != api.TaskState_RUNNING {
				continue
			}
			if drained[t.NodeId] {
				n.DesiredOnDrained++
			}
			if t.NodeId != "" && t.GetStatus().GetState() >= api.TaskState_ASSIGNED {
				n.Placed++
				if drained[t.NodeId] {
					n.OnDrained++
				}
			}
			if t.GetStatus().GetState() == api.TaskState_RUNNING {
				n.Running++
				if t.GetSpec().GetContainer().GetImage() == q.Image {
					n.RunningImage++
				}
			}
		}
	}
	return n
}

// RunningTasks maps each task of serviceIDs desired and observed RUNNING
// to its node.
func RunningTasks(tx raftstore.ReadTx, serviceIDs []string) map[string]string {
	out := map[string]string{}
	for _, sid := range serviceIDs {
		for _, t := range tx.TasksByService(sid) {
			if t.DesiredState == api.TaskState_RUNNING && t.GetStatus().GetState() == api.TaskState_RUNNING {
				out[t.Id] = t.NodeId
			}
		}
	}
	return out
}

// NotReady counts the nodes of ids that are not READY in tx.
func NotReady(tx raftstore.ReadTx, ids []string) int {
	n := 0
	for _, id := range ids {
		if tx.Node(id).GetStatus().GetState() != api.NodeStatus_READY {
			n++
		}
	}
	return n
}

// CountTasks counts q's tasks in the store View reads.
func (c *Cluster) CountTasks(q TaskQuery) TaskCounts {
	var n TaskCounts
	c.View(func(tx raftstore.ReadTx) { n = CountTasks(tx, q) })
	return n
}

// RunningTasks maps the RUNNING tasks of serviceIDs to their nodes, in the
// store View reads.
func (c *Cluster) RunningTasks(serviceIDs []string) map[string]string {
	var out map[string]string
	c.View(func(tx raftstore.ReadTx) { out = RunningTasks(tx, serviceIDs) })
	return out
}

// NotReady counts the nodes of ids that are not READY, in the store View
// reads.
func (c *Cluster) NotReady(ids []string) int {
	n := len(ids)
	c.View(func(tx raftstore.ReadTx) { n = NotReady(tx, ids) })
	return n
}
