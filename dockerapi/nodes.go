package dockerapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/moby/moby/api/types/swarm"

	api "github.com/shoal-project/shoal/proto"
)

// nodeInspect answers GET /nodes/{id}: `docker swarm init` and
// `docker swarm join-token` read the manager's address from it.
func (s *Server) nodeInspect(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	n, err := s.nodes().lookup(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nodeToSwarm(n))
	return nil
}

// nodeToSwarm is a minimal node conversion, enough for the swarm commands.
// TODO(merge): replace with dockerapi/convert's node conversion (h12-convert).
func nodeToSwarm(n *api.Node) swarm.Node {
	out := swarm.Node{
		ID: n.GetId(),
		Spec: swarm.NodeSpec{
			Annotations:  swarm.Annotations{Name: n.GetSpec().GetAnnotations().GetName(), Labels: n.GetSpec().GetAnnotations().GetLabels()},
			Role:         swarm.NodeRoleWorker,
			Availability: swarm.NodeAvailability(strings.ToLower(n.GetSpec().GetAvailability().String())),
		},
		Description: swarm.NodeDescription{
			Hostname: n.GetDescription().GetHostname(),
			Platform: swarm.Platform{Architecture: n.GetDescription().GetPlatform().GetArchitecture(), OS: n.GetDescription().GetPlatform().GetOs()},
			Engine:   swarm.EngineDescription{EngineVersion: n.GetDescription().GetEngine().GetEngineVersion(), Labels: n.GetDescription().GetEngine().GetLabels()},
		},
		Status: swarm.NodeStatus{
			State:   swarm.NodeState(strings.ToLower(n.GetStatus().GetState().String())),
			Message: n.GetStatus().GetMessage(),
			Addr:    n.GetStatus().GetAddr(),
		},
	}
	if out.Spec.Labels == nil {
		out.Spec.Labels = map[string]string{}
	}
	out.Version.Index = n.GetMeta().GetVersion()
	if t := n.GetMeta().GetCreatedAt(); t != nil {
		out.CreatedAt = t.AsTime().UTC()
	}
	if t := n.GetMeta().GetUpdatedAt(); t != nil {
		out.UpdatedAt = t.AsTime().UTC()
	}
	if n.GetSpec().GetDesiredRole() == api.NodeRole_MANAGER {
		out.Spec.Role = swarm.NodeRoleManager
	}
	if ms := n.GetManagerStatus(); ms != nil {
		reach := swarm.ReachabilityUnknown
		switch ms.GetReachability() {
		case api.Reachability_REACHABLE:
			reach = swarm.ReachabilityReachable
		case api.Reachability_UNREACHABLE:
			reach = swarm.ReachabilityUnreachable
		}
		out.ManagerStatus = &swarm.ManagerStatus{Leader: ms.GetLeader(), Reachability: reach, Addr: ms.GetAddr()}
	}
	return out
}
