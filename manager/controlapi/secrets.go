package controlapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/specs"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// secretsKey returns the cluster's secrets key, creating it (in tx) for
// clusters made before it existed.
func secretsKey(tx *raftstore.Tx) ([]byte, error) {
	c := firstCluster(tx.ReadTx)
	if c == nil {
		return nil, errdefs.Unavailable("the swarm is still initializing; retry")
	}
	if len(c.SecretsKey) == pki.SealKeySize {
		return c.SecretsKey, nil
	}
	key := make([]byte, pki.SealKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	next := proto.Clone(c).(*api.Cluster)
	next.SecretsKey = key
	return key, tx.Update(next)
}

// redactSecret strips data from a secret leaving the store.
func redactSecret(s *api.Secret) *api.Secret {
	c := proto.Clone(s).(*api.Secret)
	if c.Spec != nil {
		c.Spec.Data = nil
	}
	c.Sealed = nil
	return c
}

func secretName(s *api.Secret) string { return s.GetSpec().GetAnnotations().GetName() }
func configName(c *api.Config) string { return c.GetSpec().GetAnnotations().GetName() }

// CreateSecret stores a secret sealed; its data is never returned.
func (s *Server) CreateSecret(ctx context.Context, req *api.CreateSecretRequest) (*api.CreateSecretResponse, error) {
	spec := req.GetSpec()
	if err := specs.CheckAnnotations("secret", spec.GetAnnotations()); err != nil {
		return nil, err
	}
	if len(spec.GetData()) == 0 {
		return nil, errdefs.InvalidArgument("secret %s has no data", spec.GetAnnotations().GetName())
	}
	if n := len(spec.GetData()); n > api.MaxSecretDataBytes {
		return nil, errdefs.InvalidArgument("secret %s is %s; the limit is %s", spec.GetAnnotations().GetName(),
			api.FormatBytes(int64(n)), api.FormatBytes(api.MaxSecretDataBytes))
	}
	sum := sha256.Sum256(spec.Data)
	out := &api.Secret{Id: s.newID(), Spec: &api.SecretSpec{Annotations: spec.Annotations}, Digest: hex.EncodeToString(sum[:])}
	err := s.update(ctx, func(tx *raftstore.Tx) error {
		if tx.SecretByName(secretName(out)) != nil {
			return errdefs.AlreadyExists("secret %s already exists", secretName(out))
		}
		key, err := secretsKey(tx)
		if err != nil {
			return err
		}
		if out.Sealed, err = pki.Seal(key, spec.Data); err != nil {
			return err
		}
		return tx.Create(out)
	})
	if err != nil {
		return nil, err
	}
	var stored *api.Secret
	s.store.View(func(tx raftstore.ReadTx) { stored = tx.Secret(out.Id) })
	return &api.CreateSecretResponse{Secret: redactSecret(stored)}, nil
}

func (s *Server) lookupSecret(ref string) (*api.Secret, error) {
	var out *api.Secret
	var err error
	s.store.View(func(tx raftstore.ReadTx) { out, err = raftstore.Lookup(tx, raftstore.KindSecret, ref, secretName) })
	if errdefs.IsNotFound(err) {
		return nil, errdefs.NotFound("secret %s not found", refText(ref))
	}
	return out, err
}

// GetSecret returns a secret's metadata by ID, name or ID prefix.
func (s *Server) GetSecret(_ context.Context, req *api.GetSecretRequest) (*api.GetSecretResponse, error) {
	sec, err := s.lookupSecret(req.GetSecretId())
	if err != nil {
		return nil, err
	}
	return &api.GetSecretResponse{Secret: redactSecret(sec)}, nil
}

// ListSecrets lists secrets' metadata.
func (s *Server) ListSecrets(_ context.Context, req *api.ListSecretsRequest) (*api.ListSecretsResponse, error) {
	var matched []*api.Secret
	s.store.View(func(tx raftstore.ReadTx) {
		for _, sec := range tx.Secrets() {
			if matchCommon(req.GetFilters(), sec.Id, secretName(sec), sec.GetSpec().GetAnnotations().GetLabels()) {
				matched = append(matched, sec)
			}
		}
	})
	sort.Slice(matched, func(i, j int) bool { return secretName(matched[i]) < secretName(matched[j]) })
	matched, next := page(matched, secretName, func(s *api.Secret) int { return entrySize(s) }, req.GetPageToken(), s.pageBudget())
	out := &api.ListSecretsResponse{NextPageToken: next}
	for _, sec := range matched {
		out.Secrets = append(out.Secrets, redactSecret(sec))
	}
	return out, nil
}

// RemoveSecret deletes a secret no service uses.
func (s *Server) RemoveSecret(ctx context.Context, req *api.RemoveSecretRequest) (*api.RemoveSecretResponse, error) {
	err := s.update(ctx, func(tx *raftstore.Tx) error {
		sec, err := raftstore.Lookup(tx.ReadTx, raftstore.KindSecret, req.GetSecretId(), secretName)
		if err != nil {
			return err
		}
		if users := usersOf(tx.ReadTx, func(c *api.ContainerSpec) bool {
			for _, r := range c.GetSecrets() {
				if r.SecretId == sec.Id {
					return true
				}
			}
			return false
		}); len(users) > 0 {
			return errdefs.FailedPrecondition("secret '%s' is in use by the following service: %s", secretName(sec), joinNames(users))
		}
		return tx.Delete(unversioned(sec))
	})
	if err != nil {
		return nil, err
	}
	return &api.RemoveSecretResponse{}, nil
}

// usersOf names the services whose container spec matches.
func usersOf(tx raftstore.ReadTx, uses func(*api.ContainerSpec) bool) []string {
	var out []string
	for _, svc := range tx.Services() {
		if uses(svc.GetSpec().GetTask().GetContainer()) {
			out = append(out, serviceName(svc))
		}
	}
	sort.Strings(out)
	return out
}

func joinNames(names []string) string {
	s := ""
	for i, n := range names {
		if i > 0 {
			s += ", "
		}
		s += n
	}
	return s
}

// CreateConfig stores a config.
func (s *Server) CreateConfig(ctx context.Context, req *api.CreateConfigRequest) (*api.CreateConfigResponse, error) {
	spec := req.GetSpec()
	if err := specs.CheckAnnotations("config", spec.GetAnnotations()); err != nil {
		return nil, err
	}
	if n := len(spec.GetData()); n > api.MaxConfigDataBytes {
		return nil, errdefs.InvalidArgument("config %s is %s; the limit is %s", spec.GetAnnotations().GetName(),
			api.FormatBytes(int64(n)), api.FormatBytes(api.MaxConfigDataBytes))
	}
	out := &api.Config{Id: s.newID(), Spec: proto.Clone(spec).(*api.ConfigSpec)}
	err := s.store.Update(ctx, func(tx *raftstore.Tx) error {
		if tx.ConfigByName(configName(out)) != nil {
			return errdefs.AlreadyExists("config %s already exists", configName(out))
		}
		return tx.Create(out)
	})
	if err != nil {
		return nil, err
	}
	var stored *api.Config
	s.store.View(func(tx raftstore.ReadTx) { stored = tx.Config(out.Id) })
	return &api.CreateConfigResponse{Config: stored}, nil
}

// GetConfig returns a config by ID, name or ID prefix.
func (s *Server) GetConfig(_ context.Context, req *api.GetConfigRequest) (*api.GetConfigResponse, error) {
	var out *api.Config
	var err error
	s.store.View(func(tx raftstore.ReadTx) {
		out, err = raftstore.Lookup(tx, raftstore.KindConfig, req.GetConfigId(), configName)
	})
	if errdefs.IsNotFound(err) {
		return nil, errdefs.NotFound("config %s not found", refText(req.GetConfigId()))
	}
	if err != nil {
		return nil, err
	}
	return &api.GetConfigResponse{Config: out}, nil
}

// ListConfigs lists configs.
func (s *Server) ListConfigs(_ context.Context, req *api.ListConfigsRequest) (*api.ListConfigsResponse, error) {
	var matched []*api.Config
	s.store.View(func(tx raftstore.ReadTx) {
		for _, c := range tx.Configs() {
			if matchCommon(req.GetFilters(), c.Id, configName(c), c.GetSpec().GetAnnotations().GetLabels()) {
				matched = append(matched, c)
			}
		}
	})
	sort.Slice(matched, func(i, j int) bool { return configName(matched[i]) < configName(matched[j]) })
	out := &api.ListConfigsResponse{}
	out.Configs, out.NextPageToken = page(matched, configName, func(c *api.Config) int { return entrySize(c) }, req.GetPageToken(), s.pageBudget())
	return out, nil
}

// RemoveConfig deletes a config no service uses.
func (s *Server) RemoveConfig(ctx context.Context, req *api.RemoveConfigRequest) (*api.RemoveConfigResponse, error) {
	err := s.update(ctx, func(tx *raftstore.Tx) error {
		c, err := raftstore.Lookup(tx.ReadTx, raftstore.KindConfig, req.GetConfigId(), configName)
		if err != nil {
			return err
		}
		if users := usersOf(tx.ReadTx, func(cs *api.ContainerSpec) bool {
			for _, r := range cs.GetConfigs() {
				if r.ConfigId == c.Id {
					return true
				}
			}
			return false
		}); len(users) > 0 {
			return errdefs.FailedPrecondition("config '%s' is in use by the following service: %s", configName(c), joinNames(users))
		}
		return tx.Delete(unversioned(c))
	})
	if err != nil {
		return nil, err
	}
	return &api.RemoveConfigResponse{}, nil
}

// checkReferences makes sure a spec's secrets, configs and networks exist
// and fills in the IDs of references given by name.
func checkReferences(tx raftstore.ReadTx, spec *api.ServiceSpec) error {
	c := spec.GetTask().GetContainer()
	for _, r := range c.GetSecrets() {
		sec := tx.Secret(r.SecretId)
		if sec == nil && r.SecretName != "" {
			sec = tx.SecretByName(r.SecretName)
		}
		if sec == nil {
			return errdefs.InvalidArgument("secret not found: %s", firstNonEmpty(r.SecretName, r.SecretId))
		}
		r.SecretId, r.SecretName = sec.Id, secretName(sec)
	}
	for _, r := range c.GetConfigs() {
		cfg := tx.Config(r.ConfigId)
		if cfg == nil && r.ConfigName != "" {
			cfg = tx.ConfigByName(r.ConfigName)
		}
		if cfg == nil {
			return errdefs.InvalidArgument("config not found: %s", firstNonEmpty(r.ConfigName, r.ConfigId))
		}
		r.ConfigId, r.ConfigName = cfg.Id, configName(cfg)
	}
	return resolveNetworks(tx, spec)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
