package dockerapi

import (
	"bytes"
	"context"
	"net/http"
	"strconv"

	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/swarm"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/dockerapi/convert"
	"github.com/shoal-project/shoal/dockerapi/filters"
	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// serviceRoutes registers the /services and /tasks endpoints.
func (s *Server) serviceRoutes() {
	s.handle("GET /services", s.serviceList)
	s.handle("POST /services/create", s.serviceCreate)
	s.handle("GET /services/{id}", s.serviceInspect)
	s.handle("POST /services/{id}/update", s.serviceUpdate)
	s.handle("DELETE /services/{id}", s.serviceRemove)
	s.handle("GET /tasks", s.taskList)
	s.handle("GET /tasks/{id}", s.taskInspect)
	s.handle("GET /services/{id}/logs", s.serviceLogs, stream)
	s.handle("GET /tasks/{id}/logs", s.taskLogs, stream)
	s.handle("GET /distribution/{ref...}", s.distributionInspect)
}

// serviceList answers GET /services?filters=&status=.
func (s *Server) serviceList(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	f, err := filters.Parse(r.URL.Query().Get("filters"), "id", "label", "mode", "name")
	if err != nil {
		return err
	}
	lf := &api.ListFilters{IdPrefixes: f.Get("id"), NamePrefixes: f.Get("name"), Labels: convert.LabelFiltersFromMoby(f.Get("label"))}
	for _, m := range f.Get("mode") {
		switch m {
		case "replicated", "global", "replicated-job", "global-job":
			lf.Modes = append(lf.Modes, m)
		default:
			return badRequest("invalid filter 'mode=%s': use replicated, global, replicated-job or global-job", m)
		}
	}
	svcs, err := s.services().list(ctx, lf)
	if err != nil {
		return err
	}
	out := make([]*api.Service, 0, len(svcs))
	for _, svc := range svcs {
		if f.FuzzyMatch("id", svc.GetId()) && f.FuzzyMatch("name", svc.GetSpec().GetAnnotations().GetName()) &&
			f.MatchKVList("label", convert.StackLabelsToMoby(svc.GetSpec().GetAnnotations().GetLabels())) {
			out = append(out, svc)
		}
	}
	var status func(*api.Service) *swarm.ServiceStatus
	if boolValue(r, "status") {
		counts, err := s.taskCounter(ctx, out, f.Len() == 0)
		if err != nil {
			return err
		}
		status = func(svc *api.Service) *swarm.ServiceStatus { return convert.ServiceStatus(counts(svc)) }
	}
	var buf bytes.Buffer
	if err := s.svcJSON.writeServices(&buf, out, status); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
	return nil
}

// taskCounter lists the tasks of svcs and the nodes once and returns a
// counter of a service's tasks as `docker service ls` shows them. all says
// svcs are every service: the tasks are then listed without a filter
// (cheaper for the manager than a thousand service IDs).
func (s *Server) taskCounter(ctx context.Context, svcs []*api.Service, all bool) (func(*api.Service) convert.TaskCounts, error) {
	if len(svcs) == 0 {
		return func(*api.Service) convert.TaskCounts { return convert.TaskCounts{} }, nil
	}
	ids := make([]string, 0, len(svcs))
	for _, svc := range svcs {
		ids = append(ids, svc.GetId())
	}
	lf := &api.ListFilters{ServiceIds: ids}
	if all {
		lf = &api.ListFilters{}
	}
	tasks, err := s.tasks().list(ctx, lf)
	if err != nil {
		return nil, err
	}
	nodes, err := s.listNodes(ctx, nil)
	if err != nil {
		return nil, err
	}
	down := map[string]bool{}
	for _, n := range nodes {
		down[n.GetId()] = n.GetStatus().GetState() == api.NodeStatus_DOWN
	}
	byService := map[string][]*api.Task{}
	for _, t := range tasks {
		byService[t.GetServiceId()] = append(byService[t.GetServiceId()], t)
	}
	live := func(id string) bool { return !down[id] }
	return func(svc *api.Service) convert.TaskCounts {
		return convert.CountTasks(svc, byService[svc.GetId()], live)
	}, nil
}

// serviceInspect answers GET /services/{id}?insertDefaults=.
func (s *Server) serviceInspect(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	svc, err := s.services().lookup(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	if boolValue(r, "insertDefaults") {
		svc = proto.Clone(svc).(*api.Service)
		svc.Spec = convert.ServiceSpecWithDefaults(svc.GetSpec())
		if svc.PreviousSpec != nil {
			svc.PreviousSpec = convert.ServiceSpecWithDefaults(svc.GetPreviousSpec())
		}
	}
	writeJSON(w, http.StatusOK, convert.ServiceToMoby(svc))
	return nil
}

// serviceCreate answers POST /services/create with 201 {"ID","Warnings"}.
func (s *Server) serviceCreate(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	var req convert.ServiceSpecRequest
	if err := decodeBody(w, r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	spec, err := convert.ServiceSpecFromRequest(&req)
	if err != nil {
		return err
	}
	resp, err := s.control.CreateService(ctx, &api.CreateServiceRequest{Spec: spec})
	if err != nil {
		return errdefs.FromGRPC(err)
	}
	warnings := append([]string{}, resp.GetWarnings()...)
	warnings = append(warnings, registryAuthWarnings(r)...)
	writeJSON(w, http.StatusCreated, swarm.ServiceCreateResponse{ID: resp.GetService().GetId(), Warnings: warnings})
	return nil
}

// serviceUpdate answers POST /services/{id}/update?version=&rollback=
// with {"Warnings":[...]}. registryAuthFrom is accepted and ignored: specs
// carry no registry credentials (registryAuthWarnings).
func (s *Server) serviceUpdate(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	version, err := strconv.ParseUint(q.Get("version"), 10, 64)
	if err != nil {
		return badRequest("invalid version %q: pass the service's Version.Index from `docker service inspect` as ?version=", q.Get("version"))
	}
	var rollback api.UpdateServiceRequest_Rollback
	switch rb := q.Get("rollback"); rb {
	case "", "none":
	case "previous":
		rollback = api.UpdateServiceRequest_PREVIOUS
	default:
		return badRequest("invalid rollback %q: use \"previous\" or leave it out", rb)
	}
	var req convert.ServiceSpecRequest
	if err := decodeBody(w, r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	cur, err := s.services().lookup(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	spec, err := convert.ServiceSpecFromRequest(&req)
	if err != nil {
		return err
	}
	convert.KeepShoalOnly(spec, cur.GetSpec())
	ureq := &api.UpdateServiceRequest{ServiceId: cur.GetId(), ServiceVersion: version, Spec: spec, Rollback: rollback}
	if rollback == api.UpdateServiceRequest_PREVIOUS {
		ureq.Spec = cur.GetSpec() // the manager restores the previous spec
	}
	uresp, err := s.control.UpdateService(ctx, ureq)
	if err != nil {
		return errdefs.FromGRPC(err)
	}
	writeJSON(w, http.StatusOK, swarm.ServiceUpdateResponse{Warnings: append(append([]string{}, uresp.GetWarnings()...), registryAuthWarnings(r)...)})
	return nil
}

// serviceRemove answers DELETE /services/{id}.
func (s *Server) serviceRemove(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	svc, err := s.services().lookup(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	if _, err := s.control.RemoveService(ctx, &api.RemoveServiceRequest{ServiceId: svc.GetId()}); err != nil {
		return errdefs.FromGRPC(err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// registryAuthWarnings: shoal's specs carry no registry credentials yet, so
// credentials sent with --with-registry-auth (X-Registry-Auth) are not
// passed to the nodes; the client is told rather than left to guess.
func registryAuthWarnings(r *http.Request) []string {
	h := r.Header.Get("X-Registry-Auth")
	if h == "" {
		return nil
	}
	ac, err := authconfig.Decode(h)
	if err != nil || (ac.Username == "" && ac.Password == "" && ac.Auth == "" && ac.IdentityToken == "" && ac.RegistryToken == "") {
		return nil
	}
	return []string{"the registry credentials sent with the request (--with-registry-auth) are not passed to the nodes: shoal has no registry credentials in service specs yet; nodes pull anonymously"}
}
