package dockerapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-project/shoal/dockerapi/convert"
	"github.com/shoal-project/shoal/dockerapi/filters"
	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// nodeFilters are the keys GET /nodes accepts, as dockerd's.
var nodeFilters = []string{"id", "name", "role", "membership", "label", "node.label"}

func (s *Server) nodeRoutes() {
	s.handle("GET /nodes", s.nodeList)
	s.handle("GET /nodes/{id}", s.nodeInspect)
	s.handle("POST /nodes/{id}/update", s.nodeUpdate)
	s.handle("DELETE /nodes/{id}", s.nodeRemove)
}

// tlsInfo is the cluster's trust root, shown in every node's description.
// A root CA that cannot be read leaves it empty (the nodes are still worth
// showing); the reason is logged.
func (s *Server) tlsInfo(ctx context.Context) (swarm.TLSInfo, error) {
	c, err := s.cluster(ctx)
	if err != nil {
		return swarm.TLSInfo{}, err
	}
	info, err := convert.TLSInfoFromCA(c.GetRootCa().GetCaCert())
	if err != nil {
		s.log.Debug("node TLS info left empty", "err", err)
	}
	return info, nil
}

// nodeList answers GET /nodes?filters=.
func (s *Server) nodeList(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	f, err := filters.Parse(r.URL.Query().Get("filters"), nodeFilters...)
	if err != nil {
		return err
	}
	lf := &api.ListFilters{}
	for _, v := range f.Get("role") {
		role, err := convert.NodeRoleFromMoby(v)
		if err != nil {
			return badRequest("invalid filter 'role=%s': use manager or worker", v)
		}
		lf.Roles = append(lf.Roles, role)
	}
	for _, v := range f.Get("membership") {
		m, err := convert.NodeMembershipFromMoby(v)
		if err != nil {
			return badRequest("invalid filter 'membership=%s': use accepted or pending", v)
		}
		lf.Memberships = append(lf.Memberships, m)
	}
	nodes, err := s.listNodes(ctx, lf)
	if err != nil {
		return err
	}
	tls, err := s.tlsInfo(ctx)
	if err != nil {
		return err
	}
	out := []swarm.Node{}
	for _, n := range nodes {
		name := n.GetSpec().GetAnnotations().GetName()
		if name == "" {
			name = n.GetDescription().GetHostname()
		}
		if !f.FuzzyMatch("id", n.GetId()) || !f.FuzzyMatch("name", name) ||
			!f.MatchKVList("label", n.GetDescription().GetEngine().GetLabels()) ||
			!f.MatchKVList("node.label", n.GetSpec().GetAnnotations().GetLabels()) {
			continue
		}
		out = append(out, convert.NodeToMoby(n, tls))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// nodeInspect answers GET /nodes/{id}: `docker swarm init` and
// `docker swarm join-token` read the manager's address from it.
func (s *Server) nodeInspect(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	n, err := s.nodes().lookup(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	tls, err := s.tlsInfo(ctx)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, convert.NodeToMoby(n, tls))
	return nil
}

// versionParam reads the required ?version= of an update.
func versionParam(r *http.Request) (uint64, error) {
	v := r.URL.Query().Get("version")
	if v == "" {
		return 0, badRequest("the version query parameter is required: send the object's Version.Index from its inspect (?version=N)")
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, badRequest("invalid version %q: it must be the object's Version.Index, a number", v)
	}
	return n, nil
}

// nodeUpdate answers POST /nodes/{id}/update?version= with a NodeSpec body.
func (s *Server) nodeUpdate(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	version, err := versionParam(r)
	if err != nil {
		return err
	}
	var spec swarm.NodeSpec
	if err := decodeBody(w, r, s.cfg.MaxBodyBytes, &spec); err != nil {
		return err
	}
	n, err := s.nodes().lookup(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	next, err := convert.NodeSpecFromMoby(spec, n.GetSpec())
	if err != nil {
		return err
	}
	_, err = s.control.UpdateNode(ctx, &api.UpdateNodeRequest{NodeId: n.GetId(), NodeVersion: version, Spec: next})
	if err != nil {
		return errdefs.FromGRPC(err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// nodeRemove answers DELETE /nodes/{id}?force=.
func (s *Server) nodeRemove(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	n, err := s.nodes().lookup(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	_, err = s.control.RemoveNode(ctx, &api.RemoveNodeRequest{NodeId: n.GetId(), Force: boolValue(r, "force")})
	if err != nil {
		return errdefs.FromGRPC(err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
