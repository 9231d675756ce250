package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command/config"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/dataobj"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/secret"
	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// resolveSecrets turns --secret names into references with IDs.
func resolveSecrets(ctx context.Context, c api.ControlClient, refs []opts.FileRef) ([]*api.SecretReference, error) {
	return resolveRefs(ctx, c, secret.Kind, refs, func(id string, r opts.FileRef) *api.SecretReference {
		return &api.SecretReference{SecretId: id, SecretName: r.Source, File: fileTarget(r)}
	})
}

// resolveConfigs turns --config names into references with IDs.
func resolveConfigs(ctx context.Context, c api.ControlClient, refs []opts.FileRef) ([]*api.ConfigReference, error) {
	return resolveRefs(ctx, c, config.Kind, refs, func(id string, r opts.FileRef) *api.ConfigReference {
		return &api.ConfigReference{ConfigId: id, ConfigName: r.Source, File: fileTarget(r)}
	})
}

// resolveRefs asks the daemon for the secrets or configs refs name, and
// makes a reference to each with ref.
func resolveRefs[T dataobj.Object, R any](ctx context.Context, c api.ControlClient, k *dataobj.Kind[T], refs []opts.FileRef, ref func(id string, r opts.FileRef) R) ([]R, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	objs, err := k.List(ctx, c, &api.ListFilters{Names: sources(refs)})
	if err != nil {
		return nil, err
	}
	ids := map[string]string{}
	for _, o := range objs {
		ids[k.Annotations(o).GetName()] = o.GetId()
	}
	var out []R
	for _, r := range refs {
		id, ok := ids[r.Source]
		if !ok {
			return nil, fmt.Errorf("%s not found: %s", k.Name, r.Source)
		}
		out = append(out, ref(id, r))
	}
	return out, nil
}

// resolveNetworks turns network names into IDs.
func resolveNetworks(ctx context.Context, c api.ControlClient, atts []*api.NetworkAttachmentConfig) error {
	for _, a := range atts {
		resp, err := c.GetNetwork(ctx, &api.GetNetworkRequest{NetworkId: a.GetTarget()})
		if err != nil {
			if errors.Is(err, errdefs.ErrNotFound) {
				return fmt.Errorf("network %s not found", a.GetTarget())
			}
			return err
		}
		a.Target = resp.GetNetwork().GetId()
	}
	return nil
}

func sources(refs []opts.FileRef) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range refs {
		if !seen[r.Source] {
			seen[r.Source] = true
			out = append(out, r.Source)
		}
	}
	return out
}

func fileTarget(r opts.FileRef) *api.FileTarget {
	return &api.FileTarget{Name: r.Target, Uid: r.UID, Gid: r.GID, Mode: r.Mode}
}
