package orchestrator

import (
	"context"

	"github.com/shoal-project/shoal/manager/allocator"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// placeNew asks the placer for nodes for the tasks of part it creates that
// have no node and whose service needs nothing from the allocator (as of
// now: the creating transaction checks again). done is never nil.
func (o *Orchestrator) placeNew(ctx context.Context, part []op) (nodes map[string]string, done func()) {
	nothing := func() {}
	if o.placer == nil {
		return nil, nothing
	}
	var tasks []*api.Task
	o.store.View(func(tx raftstore.ReadTx) {
		needsNothing := map[string]bool{}
		for _, op := range part {
			t := op.t
			if op.kind != 0 || t.GetNodeId() != "" || t.GetStatus().GetState() != api.TaskState_NEW {
				continue
			}
			ok, seen := needsNothing[t.ServiceId]
			if !seen {
				svc := tx.Service(t.ServiceId)
				ok = svc != nil && allocator.NothingToAllocate(svc)
				needsNothing[t.ServiceId] = ok
			}
			if ok && len(t.GetSpec().GetNetworks()) == 0 {
				tasks = append(tasks, t)
			}
		}
	})
	if len(tasks) == 0 {
		return nil, nothing
	}
	return o.placer.PlaceNew(ctx, tasks)
}

// assignIfPlaced makes t, about to be created PENDING, ASSIGNED to node
// (the placer's plan) while that node is READY and ACTIVE in tx; otherwise
// t stays PENDING for the scheduling loop.
func assignIfPlaced(tx raftstore.ReadTx, t *api.Task, node string) {
	if node == "" || t.GetNodeId() != "" || t.GetStatus().GetState() != api.TaskState_PENDING {
		return
	}
	n := tx.Node(node)
	if n == nil || n.GetStatus().GetState() != api.NodeStatus_READY || n.GetSpec().GetAvailability() != api.Availability_ACTIVE {
		return
	}
	t.NodeId = node
	t.Status = &api.TaskStatus{State: api.TaskState_ASSIGNED, Timestamp: t.GetStatus().GetTimestamp(), Message: msgAssigned}
}

// msgAssigned is the scheduler's own message for a placement.
const msgAssigned = "scheduler assigned task to node"
