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

// The daemon's size limits: data must be smaller than these.
const (
	maxSecretSize = 500 * 1024
	maxConfigSize = 1000 * 1024
)

func secretID(s *api.Secret) string   { return s.GetId() }
func secretName(s *api.Secret) string { return s.GetSpec().GetAnnotations().GetName() }
func configID(c *api.Config) string   { return c.GetId() }
func configName(c *api.Config) string { return c.GetSpec().GetAnnotations().GetName() }

// matchFilters applies names, name prefixes, ID prefixes and labels as the
// daemon does for networks, secrets and configs.
func matchFilters(f *api.ListFilters, id, name string, labels map[string]string) bool {
	if len(f.GetNames()) > 0 && !slices.Contains(f.GetNames(), name) {
		return false
	}
	if len(f.GetNamePrefixes()) > 0 && !prefixMatch(f.GetNamePrefixes(), name) {
		return false
	}
	if !prefixMatch(f.GetIdPrefixes(), id) {
		return false
	}
	for _, l := range f.GetLabels() {
		k, v, hasValue := strings.Cut(l, "=")
		got, ok := labels[k]
		if !ok || hasValue && got != v {
			return false
		}
	}
	return true
}

func (s *Server) objectMeta() *api.Meta {
	return &api.Meta{Version: 1, CreatedAt: timestamppb.New(Now), UpdatedAt: timestamppb.New(Now)}
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
	for _, n := range s.Networks {
		if netName(n) == name {
			return nil, status.Errorf(codes.AlreadyExists, "network with name %s already exists", name)
		}
	}
	n := &api.Network{Id: s.newID("net"), Meta: s.objectMeta(), Spec: spec, Vni: uint32(4096 + len(s.Networks))}
	s.Networks = append(s.Networks, n)
	return &api.CreateNetworkResponse{Network: clone(n)}, nil
}

// ListNetworks returns the networks matching the filters, by name.
func (s *Server) ListNetworks(_ context.Context, req *api.ListNetworksRequest) (*api.ListNetworksResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	out := &api.ListNetworksResponse{}
	for _, n := range s.Networks {
		if matchFilters(req.GetFilters(), n.GetId(), netName(n), n.GetSpec().GetAnnotations().GetLabels()) {
			out.Networks = append(out.Networks, clone(n))
		}
	}
	slices.SortFunc(out.Networks, func(a, b *api.Network) int { return strings.Compare(netName(a), netName(b)) })
	return out, nil
}

// RemoveNetwork deletes a network no service uses.
func (s *Server) RemoveNetwork(_ context.Context, req *api.RemoveNetworkRequest) (*api.RemoveNetworkResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	i, err := resolve("network", req.GetNetworkId(), s.Networks, netID, netName)
	if err != nil {
		return nil, err
	}
	n := s.Networks[i]
	for _, svc := range s.Services {
		for _, a := range svc.GetSpec().GetTask().GetNetworks() {
			if a.GetTarget() == n.GetId() {
				return nil, status.Errorf(codes.FailedPrecondition, "network %s is in use by service %s", netName(n), svcName(svc))
			}
		}
	}
	s.Networks = slices.Delete(s.Networks, i, i+1)
	return &api.RemoveNetworkResponse{}, nil
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
	if len(spec.GetData()) >= maxSecretSize {
		return nil, status.Errorf(codes.InvalidArgument, "secret %s is %d bytes; secrets must be smaller than 500KB", name, len(spec.GetData()))
	}
	for _, sec := range s.Secrets {
		if secretName(sec) == name {
			return nil, status.Errorf(codes.AlreadyExists, "secret %s already exists", name)
		}
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
	i, err := resolve("secret", req.GetSecretId(), s.Secrets, secretID, secretName)
	if err != nil {
		return nil, err
	}
	return &api.GetSecretResponse{Secret: clone(s.Secrets[i])}, nil
}

// RemoveSecret deletes a secret no service uses.
func (s *Server) RemoveSecret(_ context.Context, req *api.RemoveSecretRequest) (*api.RemoveSecretResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	i, err := resolve("secret", req.GetSecretId(), s.Secrets, secretID, secretName)
	if err != nil {
		return nil, err
	}
	sec := s.Secrets[i]
	for _, svc := range s.Services {
		for _, r := range svc.GetSpec().GetTask().GetContainer().GetSecrets() {
			if r.GetSecretId() == sec.GetId() {
				return nil, status.Errorf(codes.FailedPrecondition, "secret '%s' is in use by the following service: %s", secretName(sec), svcName(svc))
			}
		}
	}
	s.Secrets = slices.Delete(s.Secrets, i, i+1)
	return &api.RemoveSecretResponse{}, nil
}

// CreateConfig stores a config with its data.
func (s *Server) CreateConfig(_ context.Context, req *api.CreateConfigRequest) (*api.CreateConfigResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	spec := clone(req.GetSpec())
	name := spec.GetAnnotations().GetName()
	if len(spec.GetData()) >= maxConfigSize {
		return nil, status.Errorf(codes.InvalidArgument, "config %s is %d bytes; configs must be smaller than 1000KB", name, len(spec.GetData()))
	}
	for _, c := range s.Configs {
		if configName(c) == name {
			return nil, status.Errorf(codes.AlreadyExists, "config %s already exists", name)
		}
	}
	c := &api.Config{Id: s.newID("cfg"), Meta: s.objectMeta(), Spec: spec}
	s.Configs = append(s.Configs, c)
	return &api.CreateConfigResponse{Config: clone(c)}, nil
}

// GetConfig resolves a config by ID, name or ID prefix.
func (s *Server) GetConfig(_ context.Context, req *api.GetConfigRequest) (*api.GetConfigResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	i, err := resolve("config", req.GetConfigId(), s.Configs, configID, configName)
	if err != nil {
		return nil, err
	}
	return &api.GetConfigResponse{Config: clone(s.Configs[i])}, nil
}

// RemoveConfig deletes a config no service uses.
func (s *Server) RemoveConfig(_ context.Context, req *api.RemoveConfigRequest) (*api.RemoveConfigResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	i, err := resolve("config", req.GetConfigId(), s.Configs, configID, configName)
	if err != nil {
		return nil, err
	}
	c := s.Configs[i]
	for _, svc := range s.Services {
		for _, r := range svc.GetSpec().GetTask().GetContainer().GetConfigs() {
			if r.GetConfigId() == c.GetId() {
				return nil, status.Errorf(codes.FailedPrecondition, "config '%s' is in use by the following service: %s", configName(c), svcName(svc))
			}
		}
	}
	s.Configs = slices.Delete(s.Configs, i, i+1)
	return &api.RemoveConfigResponse{}, nil
}
