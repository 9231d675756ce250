package testserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	api "github.com/shoal-project/shoal/proto"
)

// The daemon's size limits on data.
const (
	maxSecretSize = api.MaxSecretDataBytes
	maxConfigSize = api.MaxConfigDataBytes
)

func (s *Server) objectMeta() *api.Meta {
	return &api.Meta{Version: 1, CreatedAt: timestamppb.New(Now), UpdatedAt: timestamppb.New(Now)}
}

// nameAsked tells whether the name filter of f (when there is one) has name:
// all the fake ListSecrets and ListConfigs filter on.
func nameAsked(f *api.ListFilters, name string) bool {
	return len(f.GetNames()) == 0 || slices.Contains(f.GetNames(), name)
}

// inUse refuses to remove an object a service refers to, in the daemon's
// words for secrets and configs.
func inUse(kind, name string, svc *api.Service) error {
	if svc == nil {
		return nil
	}
	return status.Errorf(codes.FailedPrecondition, "%s '%s' is in use by the following service: %s", kind, name, svcName(svc))
}

// CreateNetwork stores an overlay network.
func (s *Server) CreateNetwork(_ context.Context, req *api.CreateNetworkRequest) (*api.CreateNetworkResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	spec := clone(req.GetSpec())
	name := spec.GetAnnotations().GetName()
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "network name is required")
	}
	if d := spec.GetDriver().GetName(); d != "" && d != "overlay" {
		return nil, status.Errorf(codes.InvalidArgument, "network driver %q is not supported: shoal networks use the overlay driver", d)
	}
	if spec.Driver == nil {
		spec.Driver = &api.Driver{Name: "overlay"}
	}
	if networks.hasName(s, name) {
		return nil, status.Errorf(codes.AlreadyExists, "network with name %s already exists", name)
	}
	n := &api.Network{Id: s.newID("net"), Meta: s.objectMeta(), Spec: spec, Vni: uint32(4096 + len(s.Networks))}
	s.Networks = append(s.Networks, n)
	return &api.CreateNetworkResponse{Network: clone(n)}, nil
}

// GetNetwork resolves a network by ID, name or ID prefix.
func (s *Server) GetNetwork(_ context.Context, req *api.GetNetworkRequest) (*api.GetNetworkResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	n, err := networks.get(s, req.GetNetworkId())
	return reply(&api.GetNetworkResponse{Network: n}, err)
}

// ListNetworks returns the networks matching the filters, by name.
func (s *Server) ListNetworks(_ context.Context, req *api.ListNetworksRequest) (*api.ListNetworksResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	out := networks.list(s, func(n *api.Network) bool {
		return matchFilters(req.GetFilters(), n.GetId(), netName(n), n.GetSpec().GetAnnotations().GetLabels())
	})
	slices.SortFunc(out, func(a, b *api.Network) int { return strings.Compare(netName(a), netName(b)) })
	return &api.ListNetworksResponse{Networks: out}, nil
}

// RemoveNetwork deletes a network no service uses.
func (s *Server) RemoveNetwork(_ context.Context, req *api.RemoveNetworkRequest) (*api.RemoveNetworkResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	err := networks.remove(s, req.GetNetworkId(), func(n *api.Network) error {
		svc := s.serviceUsing(func(svc *api.Service) bool {
			return slices.ContainsFunc(svc.GetSpec().GetTask().GetNetworks(),
				func(a *api.NetworkAttachmentConfig) bool { return a.GetTarget() == n.GetId() })
		})
		if svc != nil {
			return status.Errorf(codes.FailedPrecondition, "network %s is in use by service %s", netName(n), svcName(svc))
		}
		return nil
	})
	return reply(&api.RemoveNetworkResponse{}, err)
}

// CreateSecret stores a secret's metadata and digest; like the daemon it
// never gives the data back.
func (s *Server) CreateSecret(_ context.Context, req *api.CreateSecretRequest) (*api.CreateSecretResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	spec := req.GetSpec()
	name := spec.GetAnnotations().GetName()
	if len(spec.GetData()) == 0 {
		return nil, status.Errorf(codes.InvalidArgument, "secret %s has no data", name)
	}
	if len(spec.GetData()) > maxSecretSize {
		return nil, status.Errorf(codes.InvalidArgument, "secret %s is %s; the limit is 500 KiB", name, api.FormatBytes(int64(len(spec.GetData()))))
	}
	if secrets.hasName(s, name) {
		return nil, status.Errorf(codes.AlreadyExists, "secret %s already exists", name)
	}
	sum := sha256.Sum256(spec.GetData())
	sec := &api.Secret{Id: s.newID("sec"), Meta: s.objectMeta(), Digest: hex.EncodeToString(sum[:]),
		Spec: &api.SecretSpec{Annotations: clone(spec.GetAnnotations())}}
	s.Secrets = append(s.Secrets, sec)
	return &api.CreateSecretResponse{Secret: clone(sec)}, nil
}

// GetSecret resolves a secret by ID, name or ID prefix.
func (s *Server) GetSecret(_ context.Context, req *api.GetSecretRequest) (*api.GetSecretResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	sec, err := secrets.get(s, req.GetSecretId())
	return reply(&api.GetSecretResponse{Secret: sec}, err)
}

// ListSecrets returns the secrets whose names are asked for.
func (s *Server) ListSecrets(_ context.Context, req *api.ListSecretsRequest) (*api.ListSecretsResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	return &api.ListSecretsResponse{Secrets: secrets.list(s, func(sec *api.Secret) bool {
		return nameAsked(req.GetFilters(), secretName(sec))
	})}, nil
}

// RemoveSecret deletes a secret no service uses.
func (s *Server) RemoveSecret(_ context.Context, req *api.RemoveSecretRequest) (*api.RemoveSecretResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	err := secrets.remove(s, req.GetSecretId(), func(sec *api.Secret) error {
		return inUse("secret", secretName(sec), s.serviceUsing(func(svc *api.Service) bool {
			return slices.ContainsFunc(svc.GetSpec().GetTask().GetContainer().GetSecrets(),
				func(r *api.SecretReference) bool { return r.GetSecretId() == sec.GetId() })
		}))
	})
	return reply(&api.RemoveSecretResponse{}, err)
}

// CreateConfig stores a config with its data.
func (s *Server) CreateConfig(_ context.Context, req *api.CreateConfigRequest) (*api.CreateConfigResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	spec := clone(req.GetSpec())
	name := spec.GetAnnotations().GetName()
	if len(spec.GetData()) > maxConfigSize {
		return nil, status.Errorf(codes.InvalidArgument, "config %s is %s; the limit is 500 KiB", name, api.FormatBytes(int64(len(spec.GetData()))))
	}
	if configs.hasName(s, name) {
		return nil, status.Errorf(codes.AlreadyExists, "config %s already exists", name)
	}
	c := &api.Config{Id: s.newID("cfg"), Meta: s.objectMeta(), Spec: spec}
	s.Configs = append(s.Configs, c)
	return &api.CreateConfigResponse{Config: clone(c)}, nil
}

// GetConfig resolves a config by ID, name or ID prefix.
func (s *Server) GetConfig(_ context.Context, req *api.GetConfigRequest) (*api.GetConfigResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	c, err := configs.get(s, req.GetConfigId())
	return reply(&api.GetConfigResponse{Config: c}, err)
}

// ListConfigs returns the configs whose names are asked for.
func (s *Server) ListConfigs(_ context.Context, req *api.ListConfigsRequest) (*api.ListConfigsResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	return &api.ListConfigsResponse{Configs: configs.list(s, func(c *api.Config) bool {
		return nameAsked(req.GetFilters(), configName(c))
	})}, nil
}

// RemoveConfig deletes a config no service uses.
func (s *Server) RemoveConfig(_ context.Context, req *api.RemoveConfigRequest) (*api.RemoveConfigResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	err := configs.remove(s, req.GetConfigId(), func(c *api.Config) error {
		return inUse("config", configName(c), s.serviceUsing(func(svc *api.Service) bool {
			return slices.ContainsFunc(svc.GetSpec().GetTask().GetContainer().GetConfigs(),
				func(r *api.ConfigReference) bool { return r.GetConfigId() == c.GetId() })
		}))
	})
	return reply(&api.RemoveConfigResponse{}, err)
}
