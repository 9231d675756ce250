package allocator

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/internal/specs"
	api "github.com/shoal-project/shoal/proto"
)

// NothingToAllocate reports whether a new task of svc, as svc is now, needs
// nothing from the allocation loop: its spec has no networks, the service
// publishes no port in ingress mode (the routing mesh needs an attachment
// and a VIP), and its endpoint is already what the loop would make of it:
// made for the spec's endpoint, with the spec's ports allocated (the
// Control API does that in the transaction that writes the spec) and no
// VIPs. For such a task the loop only sets the PENDING status and copies
// the service's endpoint; Pending does the same, so that the orchestrator
// can create the task PENDING in the creating transaction and spare one
// write per task (and its round through raft).
// TestNothingToAllocateMatchesTheLoop holds the two paths to one result.
func NothingToAllocate(svc *api.Service) bool {
	if svc == nil {
		return false
	}
	spec := svc.GetSpec()
	if len(spec.GetTask().GetNetworks()) > 0 || specs.PublishesIngress(spec.GetEndpoint().GetPorts()) {
		return false
	}
	ep := svc.GetEndpoint()
	if ep == nil {
		return spec.GetEndpoint() == nil
	}
	return len(ep.GetVirtualIps()) == 0 && !specs.PublishesIngress(ep.GetPorts()) &&
		proto.Equal(ep.GetSpec(), spec.GetEndpoint()) && len(ep.GetPorts()) == len(spec.GetEndpoint().GetPorts())
}

// Pending makes a NEW task of svc what the loop would make of it when
// NothingToAllocate(svc): PENDING at now, with the service's endpoint, and
// returns true. It returns false and leaves t alone when svc needs the
// loop or t is not a NEW task of svc without networks.
func Pending(t *api.Task, svc *api.Service, now *timestamppb.Timestamp) bool {
	if t.GetStatus().GetState() != api.TaskState_NEW || t.GetServiceId() != svc.GetId() ||
		len(t.GetSpec().GetNetworks()) > 0 || !NothingToAllocate(svc) {
		return false
	}
	t.Endpoint = svc.GetEndpoint()
	t.Status = &api.TaskStatus{State: api.TaskState_PENDING, Timestamp: now, Message: msgPending}
	return true
}
