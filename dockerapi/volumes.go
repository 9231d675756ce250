package dockerapi

import (
	"context"
	"net/http"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/volume"

	"github.com/shoal-project/shoal/dockerapi/convert"
	"github.com/shoal-project/shoal/dockerapi/filters"
	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// The volume endpoints answer for THIS node's local volumes (the Volumes
// service of the control socket), as dockerd answers for its own: a
// volume is a directory on the node, never replicated.
func (s *Server) volumeRoutes() {
	s.handle("GET /volumes", s.volumeList)
	s.handle("POST /volumes/create", s.volumeCreate)
	s.handle("POST /volumes/prune", s.volumePrune)
	s.handle("GET /volumes/{name}", s.volumeInspect)
	s.handle("DELETE /volumes/{name}", s.volumeRemove)
}

// volumesClient reaches the node's Volumes service.
func (s *Server) volumesClient() (api.VolumesClient, error) {
	if s.cfg.Conn == nil {
		return nil, errdefs.New(errdefs.ErrUnavailable, "this gateway has no connection to the node's control socket: volumes are not served")
	}
	return api.NewVolumesClient(s.cfg.Conn), nil
}

// volumeError answers a volume in use with 409 Conflict, as dockerd does.
func volumeError(err error) error {
	if err != nil && strings.Contains(err.Error(), "volume is in use") {
		return &httpError{code: http.StatusConflict, msg: err.Error()}
	}
	return err
}

// volumeFilters turns the filters parameter into the Volumes service's
// filters, in key order.
func volumeFilters(f filters.Args) []*api.VolumeFilter {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []*api.VolumeFilter
	for _, k := range keys {
		for _, v := range f.Get(k) {
			out = append(out, &api.VolumeFilter{Key: k, Value: v})
		}
	}
	return out
}

func (s *Server) volumeList(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	f, err := filters.Parse(r.URL.Query().Get("filters"), "dangling", "driver", "label", "name")
	if err != nil {
		return err
	}
	if _, _, err := f.Bool("dangling"); err != nil {
		return badRequest("%s", err.Error())
	}
	c, err := s.volumesClient()
	if err != nil {
		return err
	}
	resp, err := c.List(ctx, &api.ListVolumesRequest{Filters: volumeFilters(f)})
	if err != nil {
		return errdefs.FromGRPC(err)
	}
	out := volume.ListResponse{Volumes: []volume.Volume{}, Warnings: []string{}}
	for _, v := range resp.GetVolumes() {
		out.Volumes = append(out.Volumes, convert.VolumeToMoby(v, false))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) volumeInspect(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	c, err := s.volumesClient()
	if err != nil {
		return err
	}
	resp, err := c.Get(ctx, &api.GetVolumeRequest{Name: r.PathValue("name")})
	if err != nil {
		return errdefs.FromGRPC(err)
	}
	writeJSON(w, http.StatusOK, convert.VolumeToMoby(resp.GetVolume(), false))
	return nil
}

func (s *Server) volumeCreate(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	var req volume.CreateRequest
	if err := decodeBody(w, r, s.cfg.MaxBodyBytes, &req); err != nil {
		return err
	}
	if req.ClusterVolumeSpec != nil {
		return notImplemented("cluster volumes (ClusterVolumeSpec) are not supported by shoal: create a local volume, which lives on this node only")
	}
	c, err := s.volumesClient()
	if err != nil {
		return err
	}
	resp, err := c.Create(ctx, &api.CreateVolumeRequest{Name: req.Name, Driver: req.Driver, Labels: req.Labels, Options: req.DriverOpts})
	if err != nil {
		return errdefs.FromGRPC(err)
	}
	writeJSON(w, http.StatusCreated, convert.VolumeToMoby(resp.GetVolume(), false))
	return nil
}

func (s *Server) volumeRemove(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	c, err := s.volumesClient()
	if err != nil {
		return err
	}
	_, err = c.Remove(ctx, &api.RemoveVolumeRequest{Name: r.PathValue("name"), Force: boolValue(r, "force")})
	if err != nil {
		return volumeError(errdefs.FromGRPC(err))
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// volumePrune removes unused volumes: since API 1.42 only anonymous ones
// unless the filter all=true, before it every unused one (dockerd's rule).
func (s *Server) volumePrune(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	f, err := filters.Parse(r.URL.Query().Get("filters"), "label", "label!", "all")
	if err != nil {
		return err
	}
	all, _, err := f.Bool("all")
	if err != nil {
		return badRequest("%s", err.Error())
	}
	if compareVersions(APIVersion(ctx), "1.42") < 0 {
		all = true
	}
	delete(f, "all")
	c, err := s.volumesClient()
	if err != nil {
		return err
	}
	resp, err := c.Prune(ctx, &api.PruneVolumesRequest{Filters: volumeFilters(f), All: all})
	if err != nil {
		return errdefs.FromGRPC(err)
	}
	out := volume.PruneReport{VolumesDeleted: resp.GetDeleted(), SpaceReclaimed: resp.GetSpaceReclaimed()}
	writeJSON(w, http.StatusOK, out)
	return nil
}
