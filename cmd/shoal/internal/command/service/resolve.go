package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// resolveSecrets turns --secret names into references with IDs.
func resolveSecrets(ctx context.Context, c api.ControlClient, refs []opts.FileRef) ([]*api.SecretReference, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	resp, err := c.ListSecrets(ctx, &api.ListSecretsRequest{Filters: &api.ListFilters{Names: sources(refs)}})
	if err != nil {
		return nil, err
	}
	ids := map[string]string{}
	for _, s := range resp.GetSecrets() {
		ids[s.GetSpec().GetAnnotations().GetName()] = s.GetId()
	}
	var out []*api.SecretReference
	for _, r := range refs {
		id, ok := ids[r.Source]
		if !ok {
			return nil, fmt.Errorf("secret not found: %s", r.Source)
		}
		out = append(out, &api.SecretReference{SecretId: id, SecretName: r.Source, File: fileTarget(r)})
	}
	return out, nil
}

// resolveConfigs turns --config names into references with IDs.
func resolveConfigs(ctx context.Context, c api.ControlClient, refs []opts.FileRef) ([]*api.ConfigReference, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	resp, err := c.ListConfigs(ctx, &api.ListConfigsRequest{Filters: &api.ListFilters{Names: sources(refs)}})
	if err != nil {
		return nil, err
	}
	ids := map[string]string{}
	for _, cf := range resp.GetConfigs() {
		ids[cf.GetSpec().GetAnnotations().GetName()] = cf.GetId()
	}
	var out []*api.ConfigReference
	for _, r := range refs {
		id, ok := ids[r.Source]
		if !ok {
			return nil, fmt.Errorf("config not found: %s", r.Source)
		}
		out = append(out, &api.ConfigReference{ConfigId: id, ConfigName: r.Source, File: fileTarget(r)})
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
