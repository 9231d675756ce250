package node

import (
	"context"
	"strings"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// volumeStore is what the Volumes service needs of the agent's executor:
// the node-local volumes (worker/containerd's Executor has it).
type volumeStore interface {
	ListVolumes(ctx context.Context) ([]*api.Volume, error)
	GetVolume(ctx context.Context, name string) (*api.Volume, error)
	CreateVolume(ctx context.Context, name string, labels, options map[string]string) (*api.Volume, error)
	RemoveVolume(ctx context.Context, name string, force bool) error
	PruneVolumes(ctx context.Context, match func(*api.Volume) bool) ([]string, uint64, error)
}

// volumesServer serves Volumes on the control socket: this node's local
// volumes, never another node's.
type volumesServer struct {
	api.UnimplementedVolumesServer
	n *Node
}

// volumes returns the executor's volume store.
func (n *Node) volumes() (volumeStore, error) {
	mb := n.current()
	if mb == nil {
		return nil, errdefs.New(errdefs.ErrFailedPrecondition, "this node is not in a swarm: its local volumes are kept by its container executor, which runs once the node is in one (`shoal swarm init` or `shoal swarm join`)")
	}
	mb.agentMu.Lock()
	exec := mb.exec
	mb.agentMu.Unlock()
	if exec == nil {
		return nil, errdefs.New(errdefs.ErrUnavailable, "this node's container executor is not open yet (is containerd running?): retry in a few seconds")
	}
	vs, ok := exec.(volumeStore)
	if !ok {
		return nil, errdefs.New(errdefs.ErrNotImplemented, "this node's executor keeps no local volumes")
	}
	return vs, nil
}

func (s *volumesServer) List(ctx context.Context, req *api.ListVolumesRequest) (*api.ListVolumesResponse, error) {
	match, err := volumeListFilter(req.GetFilters())
	if err != nil {
		return nil, err
	}
	vs, err := s.n.volumes()
	if err != nil {
		return nil, err
	}
	all, err := vs.ListVolumes(ctx)
	if err != nil {
		return nil, err
	}
	out := &api.ListVolumesResponse{}
	for _, v := range all {
		if match(v) {
			out.Volumes = append(out.Volumes, v)
		}
	}
	return out, nil
}

func (s *volumesServer) Get(ctx context.Context, req *api.GetVolumeRequest) (*api.GetVolumeResponse, error) {
	vs, err := s.n.volumes()
	if err != nil {
		return nil, err
	}
	v, err := vs.GetVolume(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &api.GetVolumeResponse{Volume: v}, nil
}

func (s *volumesServer) Create(ctx context.Context, req *api.CreateVolumeRequest) (*api.CreateVolumeResponse, error) {
	if d := req.GetDriver(); d != "" && d != "local" {
		return nil, errdefs.Newf(errdefs.ErrInvalidArgument, "create %s: error looking up volume plugin %s: plugin %q not found: shoal has only the \"local\" volume driver", req.GetName(), d, d)
	}
	vs, err := s.n.volumes()
	if err != nil {
		return nil, err
	}
	v, err := vs.CreateVolume(ctx, req.GetName(), req.GetLabels(), req.GetOptions())
	if err != nil {
		return nil, err
	}
	return &api.CreateVolumeResponse{Volume: v}, nil
}

func (s *volumesServer) Remove(ctx context.Context, req *api.RemoveVolumeRequest) (*api.RemoveVolumeResponse, error) {
	vs, err := s.n.volumes()
	if err != nil {
		return nil, err
	}
	if err := vs.RemoveVolume(ctx, req.GetName(), req.GetForce()); err != nil {
		return nil, err
	}
	return &api.RemoveVolumeResponse{}, nil
}

func (s *volumesServer) Prune(ctx context.Context, req *api.PruneVolumesRequest) (*api.PruneVolumesResponse, error) {
	match, err := volumePruneFilter(req.GetFilters(), req.GetAll())
	if err != nil {
		return nil, err
	}
	vs, err := s.n.volumes()
	if err != nil {
		return nil, err
	}
	deleted, space, err := vs.PruneVolumes(ctx, match)
	if err != nil {
		return nil, err
	}
	return &api.PruneVolumesResponse{Deleted: deleted, SpaceReclaimed: space}, nil
}

// groupFilters gathers the values of each key, refusing keys not in ok.
func groupFilters(fs []*api.VolumeFilter, ok ...string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, f := range fs {
		known := false
		for _, k := range ok {
			known = known || f.GetKey() == k
		}
		if !known {
			return nil, errdefs.Newf(errdefs.ErrInvalidArgument, "invalid filter '%s' (volumes take %s)", f.GetKey(), strings.Join(ok, ", "))
		}
		out[f.GetKey()] = append(out[f.GetKey()], f.GetValue())
	}
	return out, nil
}

// hasLabel tells whether labels has key, or key=value for "key=value".
func hasLabel(labels map[string]string, f string) bool {
	k, v, withValue := strings.Cut(f, "=")
	got, ok := labels[k]
	return ok && (!withValue || got == v)
}

// volumeListFilter is `volume ls --filter`: the values of one key are
// alternatives, the keys all apply (label: every one), as in Docker.
func volumeListFilter(fs []*api.VolumeFilter) (func(*api.Volume) bool, error) {
	g, err := groupFilters(fs, "dangling", "driver", "label", "name")
	if err != nil {
		return nil, err
	}
	var dangling *bool
	for _, v := range g["dangling"] {
		var b bool
		switch strings.ToLower(v) {
		case "true", "1":
			b = true
		case "false", "0":
		default:
			return nil, errdefs.Newf(errdefs.ErrInvalidArgument, "invalid filter 'dangling=%s': want true or false", v)
		}
		if dangling != nil && *dangling != b {
			return func(*api.Volume) bool { return false }, nil
		}
		dangling = &b
	}
	return func(v *api.Volume) bool {
		if dangling != nil && (len(v.GetUsedBy()) == 0) != *dangling {
			return false
		}
		if d := g["driver"]; len(d) > 0 && !anyOf(d, func(s string) bool { return s == v.GetDriver() }) {
			return false
		}
		if n := g["name"]; len(n) > 0 && !anyOf(n, func(s string) bool { return strings.Contains(v.GetName(), s) }) {
			return false
		}
		for _, l := range g["label"] {
			if !hasLabel(v.GetLabels(), l) {
				return false
			}
		}
		return true
	}, nil
}

// volumePruneFilter is `volume prune --filter`: label (every one must
// match) and label! (none may); without all, anonymous volumes only.
func volumePruneFilter(fs []*api.VolumeFilter, all bool) (func(*api.Volume) bool, error) {
	g, err := groupFilters(fs, "label", "label!")
	if err != nil {
		return nil, err
	}
	return func(v *api.Volume) bool {
		if !all && !v.GetAnonymous() {
			return false
		}
		for _, l := range g["label"] {
			if !hasLabel(v.GetLabels(), l) {
				return false
			}
		}
		for _, l := range g["label!"] {
			if hasLabel(v.GetLabels(), l) {
				return false
			}
		}
		return true
	}, nil
}

func anyOf(vals []string, f func(string) bool) bool {
	for _, v := range vals {
		if f(v) {
			return true
		}
	}
	return false
}
