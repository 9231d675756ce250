package containerd

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/containerd/containerd/v2/client"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	api "github.com/shoal-project/shoal/proto"
)

// volumeUsersOf lists, for each directory a container of the namespace
// bind-mounts, the task IDs of those containers (running or stopped: a
// container not removed yet still holds its volumes, as in Docker).
func (e *Executor) volumeUsersOf(ctx context.Context) (map[string][]string, error) {
	ctx = e.nsctx(ctx)
	cs, err := e.client.Containers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := map[string][]string{}
	for _, c := range cs {
		info, err := c.Info(ctx, client.WithoutRefreshedMetadata)
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", c.ID(), err)
		}
		if info.Spec == nil {
			continue
		}
		var sp specs.Spec
		if err := json.Unmarshal(info.Spec.GetValue(), &sp); err != nil {
			return nil, fmt.Errorf("container %s: read its spec: %w", c.ID(), err)
		}
		id := info.Labels[LabelTaskID]
		if id == "" {
			id = c.ID()
		}
		for _, m := range sp.Mounts {
			if m.Type == "bind" && filepath.Base(m.Source) == "_data" {
				out[m.Source] = append(out[m.Source], id)
			}
		}
	}
	return out, nil
}

// ListVolumes lists the node's named local volumes
// (<DataDir>/volumes/<name>/_data) with the tasks whose containers use
// them. A task's anonymous volumes live and die with the task and are not
// listed.
func (e *Executor) ListVolumes(ctx context.Context) ([]*api.Volume, error) {
	return e.vols.List(ctx)
}

// GetVolume returns one volume; errdefs.ErrNotFound when there is none.
func (e *Executor) GetVolume(ctx context.Context, name string) (*api.Volume, error) {
	return e.vols.Get(ctx, name)
}

// CreateVolume makes a named volume, or an anonymous one (random name,
// label com.docker.volume.anonymous) when name is empty.
func (e *Executor) CreateVolume(ctx context.Context, name string, labels, options map[string]string) (*api.Volume, error) {
	return e.vols.Create(ctx, name, labels, options)
}

// RemoveVolume deletes a volume no container of the node uses; one in use
// is refused ("remove NAME: volume is in use - [IDs]"), force or not.
func (e *Executor) RemoveVolume(ctx context.Context, name string, force bool) error {
	return e.vols.Remove(ctx, name, force)
}

// PruneVolumes removes the unused volumes match accepts.
func (e *Executor) PruneVolumes(ctx context.Context, match func(*api.Volume) bool) ([]string, uint64, error) {
	return e.vols.Prune(ctx, match)
}
