package dockerapi

import (
	"context"
	"net/http"

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

// networkRemove answers DELETE /networks/{id} with 204. A network no
// service uses goes at once, even while the stopping tasks of removed
// services still hold it (the manager finishes the removal when they have
// stopped), so `docker stack rm`, which removes the networks right after
// the services without retrying, succeeds.
func (s *Server) networkRemove(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	n, err := s.networks().lookup(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	if _, err := s.control.RemoveNetwork(ctx, &api.RemoveNetworkRequest{NetworkId: n.GetId()}); err != nil {
		return errdefs.FromGRPC(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
