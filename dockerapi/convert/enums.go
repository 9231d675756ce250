package convert

import (
	"strings"

	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// enum is a two-way table between one shoal proto enum and Docker's string
// form of it. Every shoal value has exactly one Docker string (enums_test.go
// checks that a new proto value cannot be forgotten); a Docker string may
// also be accepted as an alias on input (e.g. "" for the default).
type enum[P comparable, M ~string] struct {
	pairs   []enumPair[P, M]
	aliases map[M]P
}

type enumPair[P comparable, M ~string] struct {
	p P
	m M
}

func pairs[P comparable, M ~string](ps ...enumPair[P, M]) []enumPair[P, M] { return ps }

func ep[P comparable, M ~string](p P, m M) enumPair[P, M] { return enumPair[P, M]{p, m} }

// toMoby returns Docker's string for p, or "" for a value the table lacks
// (a new proto value; the enum tests fail on it).
func (e enum[P, M]) toMoby(p P) M {
	for _, x := range e.pairs {
		if x.p == p {
			return x.m
		}
	}
	return ""
}

// fromMoby parses Docker's string; field names the JSON field for the error.
func (e enum[P, M]) fromMoby(field string, m M) (P, error) {
	for _, x := range e.pairs {
		if x.m == m {
			return x.p, nil
		}
	}
	if p, ok := e.aliases[m]; ok {
		return p, nil
	}
	var zero P
	valid := make([]string, 0, len(e.pairs))
	for _, x := range e.pairs {
		valid = append(valid, string(x.m))
	}
	return zero, errdefs.Newf(errdefs.ErrInvalidArgument, "invalid %s %q: must be one of %s", field, string(m), strings.Join(valid, ", "))
}

var taskStates = enum[api.TaskState, swarm.TaskState]{pairs: pairs(
	ep(api.TaskState_NEW, swarm.TaskStateNew),
	ep(api.TaskState_PENDING, swarm.TaskStatePending),
	ep(api.TaskState_ASSIGNED, swarm.TaskStateAssigned),
	ep(api.TaskState_ACCEPTED, swarm.TaskStateAccepted),
	ep(api.TaskState_PREPARING, swarm.TaskStatePreparing),
	ep(api.TaskState_READY, swarm.TaskStateReady),
	ep(api.TaskState_STARTING, swarm.TaskStateStarting),
	ep(api.TaskState_RUNNING, swarm.TaskStateRunning),
	ep(api.TaskState_COMPLETE, swarm.TaskStateComplete),
	ep(api.TaskState_SHUTDOWN, swarm.TaskStateShutdown),
	ep(api.TaskState_FAILED, swarm.TaskStateFailed),
	ep(api.TaskState_REJECTED, swarm.TaskStateRejected),
	ep(api.TaskState_REMOVE, swarm.TaskStateRemove),
	ep(api.TaskState_ORPHANED, swarm.TaskStateOrphaned),
), aliases: map[swarm.TaskState]api.TaskState{
	// SwarmKit's ALLOCATED sits between NEW and PENDING; shoal's allocator
	// moves a task straight to PENDING.
	swarm.TaskStateAllocated: api.TaskState_PENDING,
}}

// TaskState returns Docker's lowercase name of s ("running").
func TaskState(s api.TaskState) swarm.TaskState { return taskStates.toMoby(s) }

// TaskStateFromMoby parses a Docker task state, e.g. a desired-state filter.
func TaskStateFromMoby(s string) (api.TaskState, error) {
	return taskStates.fromMoby("task state", swarm.TaskState(strings.ToLower(s)))
}

var nodeRoles = enum[api.NodeRole, swarm.NodeRole]{pairs: pairs(
	ep(api.NodeRole_WORKER, swarm.NodeRoleWorker),
	ep(api.NodeRole_MANAGER, swarm.NodeRoleManager),
)}

// NodeRole returns "worker" or "manager".
func NodeRole(r api.NodeRole) swarm.NodeRole { return nodeRoles.toMoby(r) }

// NodeRoleFromMoby parses a role, e.g. the role filter.
func NodeRoleFromMoby(s string) (api.NodeRole, error) {
	return nodeRoles.fromMoby("Role", swarm.NodeRole(s))
}

var availabilities = enum[api.Availability, swarm.NodeAvailability]{pairs: pairs(
	ep(api.Availability_ACTIVE, swarm.NodeAvailabilityActive),
	ep(api.Availability_PAUSE, swarm.NodeAvailabilityPause),
	ep(api.Availability_DRAIN, swarm.NodeAvailabilityDrain),
)}

var nodeStates = enum[api.NodeStatus_State, swarm.NodeState]{pairs: pairs(
	ep(api.NodeStatus_UNKNOWN, swarm.NodeStateUnknown),
	ep(api.NodeStatus_DOWN, swarm.NodeStateDown),
	ep(api.NodeStatus_READY, swarm.NodeStateReady),
	ep(api.NodeStatus_DISCONNECTED, swarm.NodeStateDisconnected),
)}

var reachabilities = enum[api.Reachability, swarm.Reachability]{pairs: pairs(
	ep(api.Reachability_REACHABILITY_UNKNOWN, swarm.ReachabilityUnknown),
	ep(api.Reachability_UNREACHABLE, swarm.ReachabilityUnreachable),
	ep(api.Reachability_REACHABLE, swarm.ReachabilityReachable),
)}

var nodeMemberships = enum[api.NodeSpec_Membership, string]{pairs: pairs(
	ep(api.NodeSpec_PENDING, "pending"),
	ep(api.NodeSpec_ACCEPTED, "accepted"),
)}

// NodeMembershipFromMoby parses the membership filter's value.
func NodeMembershipFromMoby(s string) (api.NodeSpec_Membership, error) {
	return nodeMemberships.fromMoby("membership", s)
}

var restartConditions = enum[api.RestartPolicy_Condition, swarm.RestartPolicyCondition]{pairs: pairs(
	ep(api.RestartPolicy_NONE, swarm.RestartPolicyConditionNone),
	ep(api.RestartPolicy_ON_FAILURE, swarm.RestartPolicyConditionOnFailure),
	ep(api.RestartPolicy_ANY, swarm.RestartPolicyConditionAny),
), aliases: map[swarm.RestartPolicyCondition]api.RestartPolicy_Condition{
	"": api.RestartPolicy_ANY, // Docker's default condition
}}

var failureActions = enum[api.UpdateConfig_FailureAction, swarm.FailureAction]{pairs: pairs(
	ep(api.UpdateConfig_PAUSE, swarm.UpdateFailureActionPause),
	ep(api.UpdateConfig_CONTINUE, swarm.UpdateFailureActionContinue),
	ep(api.UpdateConfig_ROLLBACK, swarm.UpdateFailureActionRollback),
), aliases: map[swarm.FailureAction]api.UpdateConfig_FailureAction{"": api.UpdateConfig_PAUSE}}

var updateOrders = enum[api.UpdateConfig_Order, swarm.UpdateOrder]{pairs: pairs(
	ep(api.UpdateConfig_STOP_FIRST, swarm.UpdateOrderStopFirst),
	ep(api.UpdateConfig_START_FIRST, swarm.UpdateOrderStartFirst),
), aliases: map[swarm.UpdateOrder]api.UpdateConfig_Order{"": api.UpdateConfig_STOP_FIRST}}

// updateStates maps UNKNOWN to "": Docker leaves State empty
// until a first update starts.
var updateStates = enum[api.UpdateStatus_State, swarm.UpdateState]{pairs: pairs(
	ep(api.UpdateStatus_UNKNOWN, swarm.UpdateState("")),
	ep(api.UpdateStatus_UPDATING, swarm.UpdateStateUpdating),
	ep(api.UpdateStatus_PAUSED, swarm.UpdateStatePaused),
	ep(api.UpdateStatus_COMPLETED, swarm.UpdateStateCompleted),
	ep(api.UpdateStatus_ROLLBACK_STARTED, swarm.UpdateStateRollbackStarted),
	ep(api.UpdateStatus_ROLLBACK_PAUSED, swarm.UpdateStateRollbackPaused),
	ep(api.UpdateStatus_ROLLBACK_COMPLETED, swarm.UpdateStateRollbackCompleted),
)}

var protocols = enum[api.PortConfig_Protocol, network.IPProtocol]{pairs: pairs(
	ep(api.PortConfig_TCP, network.TCP),
	ep(api.PortConfig_UDP, network.UDP),
	ep(api.PortConfig_SCTP, network.SCTP),
), aliases: map[network.IPProtocol]api.PortConfig_Protocol{"": api.PortConfig_TCP}}

var publishModes = enum[api.PortConfig_PublishMode, swarm.PortConfigPublishMode]{pairs: pairs(
	ep(api.PortConfig_INGRESS, swarm.PortConfigPublishModeIngress),
	ep(api.PortConfig_HOST, swarm.PortConfigPublishModeHost),
), aliases: map[swarm.PortConfigPublishMode]api.PortConfig_PublishMode{"": api.PortConfig_INGRESS}}

var resolutionModes = enum[api.EndpointSpec_ResolutionMode, swarm.ResolutionMode]{pairs: pairs(
	ep(api.EndpointSpec_VIP, swarm.ResolutionModeVIP),
	ep(api.EndpointSpec_DNSRR, swarm.ResolutionModeDNSRR),
), aliases: map[swarm.ResolutionMode]api.EndpointSpec_ResolutionMode{"": api.EndpointSpec_VIP}}

var mountTypes = enum[api.Mount_Type, mount.Type]{pairs: pairs(
	ep(api.Mount_BIND, mount.TypeBind),
	ep(api.Mount_VOLUME, mount.TypeVolume),
	ep(api.Mount_TMPFS, mount.TypeTmpfs),
)}

// Service modes: shoal keeps the mode as a oneof, Docker as four pointers.
const (
	ModeReplicated    = "replicated"
	ModeGlobal        = "global"
	ModeReplicatedJob = "replicated-job"
	ModeGlobalJob     = "global-job"
)

// ServiceMode names the mode of spec as the mode filter and `service ls`
// show it; "" for a spec without a mode.
func ServiceMode(spec *api.ServiceSpec) string {
	switch spec.GetMode().(type) {
	case *api.ServiceSpec_Replicated:
		return ModeReplicated
	case *api.ServiceSpec_Global:
		return ModeGlobal
	case *api.ServiceSpec_ReplicatedJob:
		return ModeReplicatedJob
	case *api.ServiceSpec_GlobalJob:
		return ModeGlobalJob
	}
	return ""
}

// platformArch is what Docker shows as a node's architecture: `uname -m`,
// where shoal records Go's GOARCH.
var platformArch = map[string]string{
	"amd64":   "x86_64",
	"arm64":   "aarch64",
	"386":     "i386",
	"ppc64le": "ppc64le",
	"s390x":   "s390x",
	"riscv64": "riscv64",
}

func archToMoby(goarch string) string {
	if a, ok := platformArch[goarch]; ok {
		return a
	}
	return goarch
}
