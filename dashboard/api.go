package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// State is GET /api/state: the whole cluster as the page shows it.
type State struct {
	Nodes    []*NodeView    `json:"nodes"`
	Services []*ServiceView `json:"services"`
	Tasks    []*TaskView    `json:"tasks"`
	// Live tells whether the watch stream is open (changes reach the page).
	Live bool `json:"live"`
}

// maxReplicas bounds a scale request, as a typo guard.
const maxReplicas = 100000

// callTimeout bounds each Control call of a request.
const callTimeout = 30 * time.Second

type apiError struct {
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Message: msg})
}

// writeCallError answers with the status of a Control error's class.
func writeCallError(w http.ResponseWriter, err error) {
	err = errdefs.FromGRPC(err)
	status := http.StatusInternalServerError
	switch errdefs.Code(err) {
	case codes.NotFound:
		status = http.StatusNotFound
	case codes.InvalidArgument:
		status = http.StatusBadRequest
	case codes.Aborted, codes.AlreadyExists:
		status = http.StatusConflict
	case codes.FailedPrecondition:
		status = http.StatusPreconditionFailed
	case codes.PermissionDenied:
		status = http.StatusForbidden
	case codes.Unavailable:
		status = http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		status = http.StatusGatewayTimeout
	}
	if errdefs.IsConflict(err) {
		status = http.StatusConflict
	}
	writeError(w, status, err.Error())
}

func (s *Server) state(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	st, err := s.State(ctx)
	if err != nil {
		writeCallError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// State reads every node, service and task, following the list pages.
func (s *Server) State(ctx context.Context) (*State, error) {
	st := &State{Nodes: []*NodeView{}, Services: []*ServiceView{}, Tasks: []*TaskView{}}
	for tok := ""; ; {
		resp, err := s.control.ListNodes(ctx, &api.ListNodesRequest{PageToken: tok})
		if err != nil {
			return nil, err
		}
		for _, n := range resp.GetNodes() {
			st.Nodes = append(st.Nodes, nodeView(n))
		}
		if tok = resp.GetNextPageToken(); tok == "" {
			break
		}
	}
	for tok := ""; ; {
		resp, err := s.control.ListServices(ctx, &api.ListServicesRequest{PageToken: tok})
		if err != nil {
			return nil, err
		}
		for _, sv := range resp.GetServices() {
			st.Services = append(st.Services, serviceView(sv))
		}
		if tok = resp.GetNextPageToken(); tok == "" {
			break
		}
	}
	for tok := ""; ; {
		resp, err := s.control.ListTasks(ctx, &api.ListTasksRequest{PageToken: tok})
		if err != nil {
			return nil, err
		}
		for _, t := range resp.GetTasks() {
			st.Tasks = append(st.Tasks, taskView(t))
		}
		if tok = resp.GetNextPageToken(); tok == "" {
			break
		}
	}
	s.hub.mu.Lock()
	st.Live = s.hub.live
	s.hub.mu.Unlock()
	return st, nil
}

// events streams changes as server-sent events: "hello" at once (the page
// then loads /api/state), "change" per store change, "resync" when the
// watch stream was reopened (the page reloads its state). A client that
// falls behind is cut off; EventSource reconnects.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming is not supported here")
		return
	}
	sub, cancel := s.hub.subscribe()
	defer cancel()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprint(w, "retry: 1000\nevent: hello\ndata: {}\n\n")
	fl.Flush()
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.gone:
			return
		case <-ping.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return
			}
		case m := <-sub.c:
			if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", m.event, m.data); err != nil {
				return
			}
			// Write what else is queued before flushing once.
			for n := len(sub.c); n > 0; n-- {
				m := <-sub.c
				if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", m.event, m.data); err != nil {
					return
				}
			}
		}
		fl.Flush()
	}
}

// actionRequest is the body of the actions; Version is the object's
// Meta.Version the page saw (optimistic concurrency).
type actionRequest struct {
	Version      uint64  `json:"version"`
	Replicas     *int64  `json:"replicas,omitempty"`
	Availability *string `json:"availability,omitempty"`
}

// decodeAction reads a JSON action body; it insists on JSON so that a
// cross-site form cannot post one.
func decodeAction(w http.ResponseWriter, r *http.Request) (*actionRequest, bool) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "send the action as application/json")
		return nil, false
	}
	var req actionRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad request body: "+err.Error())
		return nil, false
	}
	if req.Version == 0 {
		writeError(w, http.StatusBadRequest, `"version" is required: the version of the object you saw`)
		return nil, false
	}
	return &req, true
}

// getService reads the service and checks the version the page saw.
func (s *Server) getService(ctx context.Context, w http.ResponseWriter, id string, version uint64) (*api.Service, bool) {
	resp, err := s.control.GetService(ctx, &api.GetServiceRequest{ServiceId: id})
	if err != nil {
		writeCallError(w, err)
		return nil, false
	}
	svc := resp.GetService()
	if svc.GetId() != id {
		// GetService also takes names and prefixes; the API takes IDs.
		writeError(w, http.StatusNotFound, fmt.Sprintf("service %s not found", id))
		return nil, false
	}
	if v := svc.GetMeta().GetVersion(); v != version {
		writeError(w, http.StatusConflict, fmt.Sprintf("service %s changed since you saw it (version %d, now %d): reload and try again",
			svc.GetSpec().GetAnnotations().GetName(), version, v))
		return nil, false
	}
	return svc, true
}

func (s *Server) scale(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeAction(w, r)
	if !ok {
		return
	}
	if req.Replicas == nil || *req.Replicas < 0 || *req.Replicas > maxReplicas {
		writeError(w, http.StatusBadRequest, fmt.Sprintf(`"replicas" must be a number from 0 to %d`, maxReplicas))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	svc, ok := s.getService(ctx, w, r.PathValue("id"), req.Version)
	if !ok {
		return
	}
	spec, _ := proto.Clone(svc.GetSpec()).(*api.ServiceSpec)
	switch m := spec.GetMode().(type) {
	case *api.ServiceSpec_Replicated:
		m.Replicated.Replicas = uint64(*req.Replicas)
	case *api.ServiceSpec_ReplicatedJob:
		m.ReplicatedJob.MaxConcurrent = uint64(*req.Replicas)
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("scale can only be used with replicated or replicated-job mode (service %s is %s)",
			spec.GetAnnotations().GetName(), modeName(spec)))
		return
	}
	s.updateService(ctx, w, &api.UpdateServiceRequest{ServiceId: svc.GetId(), ServiceVersion: req.Version, Spec: spec})
}

func (s *Server) rollback(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeAction(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	svc, ok := s.getService(ctx, w, r.PathValue("id"), req.Version)
	if !ok {
		return
	}
	s.updateService(ctx, w, &api.UpdateServiceRequest{ServiceId: svc.GetId(), ServiceVersion: req.Version,
		Spec: svc.GetSpec(), Rollback: api.UpdateServiceRequest_PREVIOUS})
}

func (s *Server) updateService(ctx context.Context, w http.ResponseWriter, req *api.UpdateServiceRequest) {
	resp, err := s.control.UpdateService(ctx, req)
	if err != nil {
		writeCallError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"service": serviceView(resp.GetService()), "warnings": resp.GetWarnings()})
}

func (s *Server) availability(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeAction(w, r)
	if !ok {
		return
	}
	var avail api.Availability
	switch strings.ToLower(deref(req.Availability)) {
	case "active":
		avail = api.Availability_ACTIVE
	case "pause":
		avail = api.Availability_PAUSE
	case "drain":
		avail = api.Availability_DRAIN
	default:
		writeError(w, http.StatusBadRequest, `"availability" must be active, pause or drain`)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	id := r.PathValue("id")
	resp, err := s.control.GetNode(ctx, &api.GetNodeRequest{NodeId: id})
	if err != nil {
		writeCallError(w, err)
		return
	}
	n := resp.GetNode()
	if n.GetId() != id {
		writeError(w, http.StatusNotFound, fmt.Sprintf("node %s not found", id))
		return
	}
	if v := n.GetMeta().GetVersion(); v != req.Version {
		writeError(w, http.StatusConflict, fmt.Sprintf("node %s changed since you saw it (version %d, now %d): reload and try again",
			n.GetDescription().GetHostname(), req.Version, v))
		return
	}
	spec, _ := proto.Clone(n.GetSpec()).(*api.NodeSpec)
	if spec == nil {
		spec = &api.NodeSpec{}
	}
	spec.Availability = avail
	uresp, err := s.control.UpdateNode(ctx, &api.UpdateNodeRequest{NodeId: id, NodeVersion: req.Version, Spec: spec})
	if err != nil {
		writeCallError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"node": nodeView(uresp.GetNode())})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
