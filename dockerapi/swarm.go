package dockerapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-project/shoal/dockerapi/convert"
	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// boolValue reads a boolean query parameter as dockerd does: empty, 0, no,
// false and none are false, anything else true.
func boolValue(r *http.Request, key string) bool {
	switch strings.ToLower(strings.TrimSpace(r.URL.Query().Get(key))) {
	case "", "0", "no", "false", "none":
		return false
	}
	return true
}

// swarmInit answers POST /swarm/init with the new node's ID as a JSON
// string.
func (s *Server) swarmInit(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	var req swarm.InitRequest
	if err := decodeBody(w, r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	in, err := convert.InitRequestFromMoby(req)
	if err != nil {
		return err
	}
	resp, err := s.local.Init(ctx, in)
	if err != nil {
		return errdefs.FromGRPC(err)
	}
	s.wakeEvents()
	writeJSON(w, http.StatusOK, resp.GetNodeId())
	return nil
}

// swarmJoin answers POST /swarm/join, trying each remote address in turn
// while the managers cannot be reached.
func (s *Server) swarmJoin(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	var req swarm.JoinRequest
	if err := decodeBody(w, r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	reqs, err := convert.JoinRequestsFromMoby(req)
	if err != nil {
		return err
	}
	for _, jr := range reqs {
		_, err = s.local.Join(ctx, jr)
		err = errdefs.FromGRPC(err)
		if err == nil || !errdefs.IsUnavailable(err) || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return err
	}
	s.wakeEvents()
	w.WriteHeader(http.StatusOK)
	return nil
}

// swarmLeave answers POST /swarm/leave?force=.
func (s *Server) swarmLeave(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	_, err := s.local.Leave(ctx, &api.LeaveRequest{Force: boolValue(r, "force")})
	if err != nil {
		err = errdefs.FromGRPC(err)
		if strings.HasPrefix(err.Error(), "This node is not part of a swarm") {
			return &httpError{code: http.StatusServiceUnavailable, msg: msgNoSwarm}
		}
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// cluster reads the swarm's cluster object from the manager.
func (s *Server) cluster(ctx context.Context) (*api.Cluster, error) {
	resp, err := s.control.GetCluster(ctx, &api.GetClusterRequest{})
	if err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	return resp.GetCluster(), nil
}

// swarmInspect answers GET /swarm.
func (s *Server) swarmInspect(ctx context.Context, w http.ResponseWriter, _ *http.Request) error {
	c, err := s.cluster(ctx)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, convert.ClusterToMoby(c))
	return nil
}

// swarmUpdate answers POST /swarm/update?version=&rotateWorkerToken=&
// rotateManagerToken=&rotateManagerUnlockKey= with the whole spec as the
// body; shoal's own settings docker's spec lacks are kept.
func (s *Server) swarmUpdate(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	raw := r.URL.Query().Get("version")
	version, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return badRequest("invalid swarm version '%s': %v (send the Version.Index of GET /swarm)", raw, err)
	}
	var spec swarm.Spec
	if err := decodeBody(w, r, s.cfg.MaxBodyBytes, &spec); err != nil {
		return err
	}
	c, err := s.cluster(ctx)
	if err != nil {
		return err
	}
	next, err := convert.ClusterSpecFromMoby(spec, c.GetSpec())
	if err != nil {
		return err
	}
	_, err = s.control.UpdateCluster(ctx, &api.UpdateClusterRequest{
		ClusterId:      c.GetId(),
		ClusterVersion: version,
		Spec:           next,
		Rotation: &api.KeyRotation{
			WorkerJoinToken:  boolValue(r, "rotateWorkerToken"),
			ManagerJoinToken: boolValue(r, "rotateManagerToken"),
			ManagerUnlockKey: boolValue(r, "rotateManagerUnlockKey"),
		},
	})
	if err != nil {
		return errdefs.FromGRPC(err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// swarmUnlockKey answers GET /swarm/unlockkey (empty when autolock is off:
// the CLI then says "no unlock key is set").
func (s *Server) swarmUnlockKey(ctx context.Context, w http.ResponseWriter, _ *http.Request) error {
	resp, err := s.control.GetUnlockKey(ctx, &api.GetUnlockKeyRequest{})
	if err != nil {
		return errdefs.FromGRPC(err)
	}
	writeJSON(w, http.StatusOK, swarm.UnlockKeyResponse{UnlockKey: resp.GetUnlockKey()})
	return nil
}

// swarmUnlock answers POST /swarm/unlock.
func (s *Server) swarmUnlock(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	var req swarm.UnlockRequest
	if err := decodeBody(w, r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	if _, err := s.local.Unlock(ctx, &api.UnlockRequest{UnlockKey: strings.TrimSpace(req.UnlockKey)}); err != nil {
		return errdefs.FromGRPC(err)
	}
	s.wakeEvents()
	w.WriteHeader(http.StatusOK)
	return nil
}
