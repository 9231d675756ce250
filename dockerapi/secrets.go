package dockerapi

import (
	"context"
	"net/http"

	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-project/shoal/dockerapi/convert"
	"github.com/shoal-project/shoal/dockerapi/filters"
	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// secretFilters are the keys GET /secrets and GET /configs accept, as
// dockerd's.
var secretFilters = []string{"id", "name", "names", "label"}

func (s *Server) secretRoutes() {
	s.handle("GET /secrets", s.secretList)
	s.handle("POST /secrets/create", s.secretCreate)
	s.handle("GET /secrets/{id}", s.secretInspect)
	s.handle("POST /secrets/{id}/update", s.secretUpdate)
	s.handle("DELETE /secrets/{id}", s.secretRemove)

	s.handle("GET /configs", s.configList)
	s.handle("POST /configs/create", s.configCreate)
	s.handle("GET /configs/{id}", s.configInspect)
	s.handle("POST /configs/{id}/update", s.configUpdate)
	s.handle("DELETE /configs/{id}", s.configRemove)
}

// matchObject applies dockerd's secret/config filters: id (prefix), name
// (prefix), names (exact), label.
func matchObject(f filters.Args, id string, a *api.Annotations) bool {
	return f.FuzzyMatch("id", id) && f.FuzzyMatch("name", a.GetName()) &&
		f.ExactMatch("names", a.GetName()) && f.MatchKVList("label", convert.StackLabelsToMoby(a.GetLabels()))
}

// idResponse is the answer of a create: {"ID": "..."}.
type idResponse struct {
	ID string `json:"ID"`
}

func (s *Server) secretList(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	f, err := filters.Parse(r.URL.Query().Get("filters"), secretFilters...)
	if err != nil {
		return err
	}
	all, err := s.secrets().list(ctx, &api.ListFilters{})
	if err != nil {
		return err
	}
	out := []swarm.Secret{}
	for _, o := range all {
		if matchObject(f, o.GetId(), o.GetSpec().GetAnnotations()) {
			out = append(out, convert.SecretToMoby(o))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) secretCreate(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	var in swarm.SecretSpec
	if err := decodeBody(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	spec, err := convert.SecretSpecFromMoby(in)
	if err != nil {
		return err
	}
	resp, err := s.control.CreateSecret(ctx, &api.CreateSecretRequest{Spec: spec})
	if err != nil {
		return errdefs.FromGRPC(err)
	}
	writeJSON(w, http.StatusCreated, idResponse{ID: resp.GetSecret().GetId()})
	return nil
}

func (s *Server) secretInspect(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	o, err := s.secrets().lookup(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, convert.SecretToMoby(o))
	return nil
}

// secretUpdate answers POST /secrets/{id}/update?version=: only labels may
// change, as in Docker (the manager refuses other changes).
func (s *Server) secretUpdate(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	version, err := versionParam(r)
	if err != nil {
		return err
	}
	var in swarm.SecretSpec
	if err := decodeBody(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	o, err := s.secrets().lookup(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	spec, err := convert.SecretSpecFromMoby(in)
	if err != nil {
		return err
	}
	if len(spec.Data) == 0 {
		spec.Data = o.GetSpec().GetData() // Docker clients never send it back
	}
	if _, err := s.control.UpdateSecret(ctx, &api.UpdateSecretRequest{SecretId: o.GetId(), SecretVersion: version, Spec: spec}); err != nil {
		return errdefs.FromGRPC(err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) secretRemove(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	o, err := s.secrets().lookup(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	if _, err := s.control.RemoveSecret(ctx, &api.RemoveSecretRequest{SecretId: o.GetId()}); err != nil {
		return errdefs.FromGRPC(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) configList(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	f, err := filters.Parse(r.URL.Query().Get("filters"), secretFilters...)
	if err != nil {
		return err
	}
	all, err := s.configs().list(ctx, &api.ListFilters{})
	if err != nil {
		return err
	}
	out := []swarm.Config{}
	for _, o := range all {
		if matchObject(f, o.GetId(), o.GetSpec().GetAnnotations()) {
			out = append(out, convert.ConfigToMoby(o))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) configCreate(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	var in swarm.ConfigSpec
	if err := decodeBody(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	spec, err := convert.ConfigSpecFromMoby(in)
	if err != nil {
		return err
	}
	resp, err := s.control.CreateConfig(ctx, &api.CreateConfigRequest{Spec: spec})
	if err != nil {
		return errdefs.FromGRPC(err)
	}
	writeJSON(w, http.StatusCreated, idResponse{ID: resp.GetConfig().GetId()})
	return nil
}

func (s *Server) configInspect(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	o, err := s.configs().lookup(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, convert.ConfigToMoby(o))
	return nil
}

// configUpdate answers POST /configs/{id}/update?version=: only labels may
// change, as in Docker.
func (s *Server) configUpdate(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	version, err := versionParam(r)
	if err != nil {
		return err
	}
	var in swarm.ConfigSpec
	if err := decodeBody(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		return err
	}
	o, err := s.configs().lookup(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	spec, err := convert.ConfigSpecFromMoby(in)
	if err != nil {
		return err
	}
	if len(spec.Data) == 0 {
		spec.Data = o.GetSpec().GetData()
	}
	if _, err := s.control.UpdateConfig(ctx, &api.UpdateConfigRequest{ConfigId: o.GetId(), ConfigVersion: version, Spec: spec}); err != nil {
		return errdefs.FromGRPC(err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) configRemove(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	o, err := s.configs().lookup(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	if _, err := s.control.RemoveConfig(ctx, &api.RemoveConfigRequest{ConfigId: o.GetId()}); err != nil {
		return errdefs.FromGRPC(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
