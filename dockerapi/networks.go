package dockerapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/moby/moby/api/types/network"

	"github.com/shoal-project/shoal/dockerapi/convert"
	"github.com/shoal-project/shoal/dockerapi/filters"
	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// networkFilters are the keys GET /networks accepts, as dockerd's
// ("dangling" is dockerd's too: a swarm network is never dangling on a
// manager, so it is refused rather than guessed).
var networkFilters = []string{"driver", "id", "label", "name", "scope", "type"}

func (s *Server) networkRoutes() {
	s.handle("GET /networks", s.networkList)
	s.handle("POST /networks/create", s.networkCreate)
	s.handle("GET /networks/{id}", s.networkInspect)
	s.handle("DELETE /networks/{id}", s.networkRemove)
}

// networkList answers GET /networks?filters=. Every shoal network is a
// swarm-scoped, user-defined ("custom") overlay.
func (s *Server) networkList(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	f, err := filters.Parse(r.URL.Query().Get("filters"), networkFilters...)
	if err != nil {
		return err
	}
	for _, t := range f.Get("type") {
		if t != "custom" && t != "builtin" {
			return badRequest("invalid filter: 'type'='%s': use custom or builtin", t)
		}
	}
	all, err := s.networks().list(ctx, &api.ListFilters{})
	if err != nil {
		return err
	}
	out := []network.Summary{}
	for _, n := range all {
		sum := convert.NetworkSummaryToMoby(n)
		if !f.Match("id", sum.ID) || !f.Match("name", sum.Name) || !f.ExactMatch("driver", sum.Driver) ||
			!f.ExactMatch("scope", sum.Scope) || !f.ExactMatch("type", "custom") ||
			!f.MatchKVList("label", sum.Labels) {
			continue
		}
		out = append(out, sum)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// networkCreate answers POST /networks/create with 201 {"Id","Warning"}.
func (s *Server) networkCreate(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	var in convert.NetworkCreateRequest
	if err := decodeBody(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	spec, err := convert.NetworkSpecFromCreate(in)
	if err != nil {
		return err
	}
	resp, err := s.control.CreateNetwork(ctx, &api.CreateNetworkRequest{Spec: spec})
	if err != nil {
		return errdefs.FromGRPC(err)
	}
	writeJSON(w, http.StatusCreated, network.CreateResponse{ID: resp.GetNetwork().GetId()})
	return nil
}

// networkInspect answers GET /networks/{id}?scope=&verbose=. A scope other
// than swarm finds nothing: shoal has no local networks. verbose adds
// nothing (Docker's verbose view lists the service endpoints of the
// network's load balancer, which shoal does not track per network).
func (s *Server) networkInspect(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	switch sc := r.URL.Query().Get("scope"); sc {
	case "", "swarm":
	case "local", "global":
		return notFound("network %s not found: shoal's networks are swarm-scoped, none has scope %s", ref, sc)
	default:
		return badRequest("invalid scope %q: use swarm, local or global", sc)
	}
	n, err := s.networks().lookup(ctx, ref)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, convert.NetworkInspectToMoby(n))
	return nil
}

// Bounds of networkRemove's wait for the tasks of removed services.
var (
	networkRemoveWait = 30 * time.Second
	networkRemovePoll = 200 * time.Millisecond
)

// networkRemove answers DELETE /networks/{id} with 204. `docker stack rm`
// removes a stack's services and then at once its networks, without
// retrying: Docker's swarm lets a network go once no service uses it, while
// the removed services' tasks are still stopping. shoal's manager refuses
// until those tasks have stopped and released their addresses, so while no
// service uses the network and the manager still says it is in use, this
// waits for the tasks (polling, at most networkRemoveWait) instead of
// failing. A network a service uses is refused at once.
func (s *Server) networkRemove(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	n, err := s.networks().lookup(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	deadline := time.Now().Add(networkRemoveWait)
	for {
		_, err := s.control.RemoveNetwork(ctx, &api.RemoveNetworkRequest{NetworkId: n.GetId()})
		if err == nil {
			break
		}
		err = errdefs.FromGRPC(err)
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "in use") || !time.Now().Before(deadline) {
			return err
		}
		if used, lerr := s.serviceUsesNetwork(ctx, n); lerr != nil || used {
			return err
		}
		select {
		case <-time.After(networkRemovePoll):
		case <-ctx.Done():
			return err
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// serviceUsesNetwork tells whether a service's spec attaches to n (by ID or
// name).
func (s *Server) serviceUsesNetwork(ctx context.Context, n *api.Network) (bool, error) {
	svcs, err := s.services().list(ctx, nil)
	if err != nil {
		return false, err
	}
	for _, svc := range svcs {
		for _, a := range svc.GetSpec().GetTask().GetNetworks() {
			if a.GetTarget() == n.GetId() || a.GetTarget() == n.GetSpec().GetAnnotations().GetName() {
				return true, nil
			}
		}
	}
	return false, nil
}
