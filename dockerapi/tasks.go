package dockerapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-project/shoal/dockerapi/convert"
	"github.com/shoal-project/shoal/dockerapi/filters"
	api "github.com/shoal-project/shoal/proto"
)

// taskList answers GET /tasks?filters= (id, name, label, service, node,
// desired-state, _up-to-date), as dockerd filters them: service and node
// values are IDs, names or unique ID prefixes (node "self" is this node);
// _up-to-date keeps the tasks of each service's current spec. label
// matches the labels docker shows on a task, its service's with its own on
// top (`docker stack ps` filters by com.docker.stack.namespace, a service
// label), so it is matched here and not by the manager, which knows only
// the task's own.
func (s *Server) taskList(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	f, err := filters.Parse(r.URL.Query().Get("filters"), "id", "name", "label", "service", "node", "desired-state", "_up-to-date")
	if err != nil {
		return err
	}
	lf := &api.ListFilters{IdPrefixes: f.Get("id")}
	services := map[string]*api.Service{}
	for _, ref := range f.Get("service") {
		svc, err := s.services().lookup(ctx, ref)
		if err != nil {
			return err
		}
		services[svc.GetId()] = svc
		lf.ServiceIds = append(lf.ServiceIds, svc.GetId())
	}
	for _, ref := range f.Get("node") {
		if ref == "self" {
			li, err := s.local.Info(ctx, &api.InfoRequest{})
			if err != nil {
				return err
			}
			ref = li.GetNodeId()
		}
		n, err := s.nodes().lookup(ctx, ref)
		if err != nil {
			return err
		}
		lf.NodeIds = append(lf.NodeIds, n.GetId())
	}
	for _, v := range f.Get("desired-state") {
		st, err := convert.TaskStateFromMoby(v)
		if err != nil || (st != api.TaskState_RUNNING && st != api.TaskState_SHUTDOWN && st != api.TaskState_ACCEPTED) {
			return badRequest("invalid filter 'desired-state=%s': use running, shutdown or accepted", v)
		}
		lf.DesiredStates = append(lf.DesiredStates, st)
	}
	upToDate, _, err := f.Bool("_up-to-date")
	if err != nil {
		return badRequest("invalid filter '_up-to-date': %v", err)
	}
	tasks, err := s.tasks().list(ctx, lf)
	if err != nil {
		return err
	}
	if upToDate {
		// The current spec version of every service the tasks belong to.
		for _, t := range tasks {
			if _, ok := services[t.GetServiceId()]; ok {
				continue
			}
			svc, err := s.services().get(ctx, t.GetServiceId())
			if err != nil {
				services[t.GetServiceId()] = nil // removed: its tasks are not up to date
				continue
			}
			services[t.GetServiceId()] = svc
		}
	}
	lookup, err := s.networkLookup(ctx)
	if err != nil {
		return err
	}
	out := make([]swarm.Task, 0, len(tasks))
	for _, t := range tasks {
		if !f.FuzzyMatch("id", t.GetId()) {
			continue
		}
		if upToDate {
			svc := services[t.GetServiceId()]
			if svc == nil || t.GetSpecVersion() != svc.GetSpecVersion() {
				continue
			}
		}
		m := convert.TaskToMoby(t, lookup)
		if !f.MatchKVList("label", m.Labels) || (!f.FuzzyMatch("name", m.Name) && !f.FuzzyMatch("name", taskName(t))) {
			continue
		}
		out = append(out, m)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// taskName is the name docker shows for a task: service.slot (replicated)
// or service.node (global).
func taskName(t *api.Task) string {
	if n := t.GetAnnotations().GetName(); n != "" {
		return n
	}
	svc := t.GetServiceAnnotations().GetName()
	if t.GetSlot() != 0 {
		return svc + "." + strconv.FormatUint(t.GetSlot(), 10)
	}
	return svc + "." + t.GetNodeId()
}

// networkLookup lists the networks once for TaskToMoby.
func (s *Server) networkLookup(ctx context.Context) (convert.NetworkLookup, error) {
	nws, err := s.networks().list(ctx, nil)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*api.Network, len(nws))
	for _, n := range nws {
		byID[n.GetId()] = n
	}
	return func(id string) *api.Network { return byID[id] }, nil
}

// taskInspect answers GET /tasks/{id}.
func (s *Server) taskInspect(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	t, err := s.tasks().lookup(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	lookup, err := s.networkLookup(ctx)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, convert.TaskToMoby(t, lookup))
	return nil
}
