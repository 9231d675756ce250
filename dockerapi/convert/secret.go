package convert

import (
	"github.com/moby/moby/api/types/swarm"

	api "github.com/shoal-project/shoal/proto"
)

// SecretToMoby returns Docker's Secret for s. Data is never returned, as
// Docker never returns it.
func SecretToMoby(s *api.Secret) swarm.Secret {
	return swarm.Secret{
		ID:   s.GetId(),
		Meta: Meta(s.GetMeta()),
		Spec: swarm.SecretSpec{Annotations: annotationsToMoby(s.GetSpec().GetAnnotations())},
	}
}

// SecretSpecToMoby returns Docker's SecretSpec for s, with its Data (for
// round trips in tests and for a create's echo; reads use SecretToMoby).
func SecretSpecToMoby(s *api.SecretSpec) swarm.SecretSpec {
	return swarm.SecretSpec{Annotations: annotationsToMoby(s.GetAnnotations()), Data: cloneBytes(s.GetData())}
}

// SecretSpecFromMoby returns shoal's spec for POST /secrets/create or
// /secrets/{id}/update. Data arrives base64-decoded by encoding/json.
func SecretSpecFromMoby(s swarm.SecretSpec) (*api.SecretSpec, error) {
	if d := s.Driver; d != nil && (d.Name != "" || len(d.Options) > 0) {
		return nil, unsupported("Driver", "shoal stores secrets itself (encrypted in the raft log); external secret drivers are not available")
	}
	if t := s.Templating; t != nil && (t.Name != "" || len(t.Options) > 0) {
		return nil, unsupported("Templating", "shoal mounts secret data as given, without templating")
	}
	return &api.SecretSpec{Annotations: annotationsFromMoby(s.Annotations), Data: cloneBytes(s.Data)}, nil
}

// ConfigToMoby returns Docker's Config for c, with Data when the stored spec
// has it: unlike secret data, Docker returns config data.
func ConfigToMoby(c *api.Config) swarm.Config {
	return swarm.Config{
		ID:   c.GetId(),
		Meta: Meta(c.GetMeta()),
		Spec: ConfigSpecToMoby(c.GetSpec()),
	}
}

// ConfigSpecToMoby returns Docker's ConfigSpec for c.
func ConfigSpecToMoby(c *api.ConfigSpec) swarm.ConfigSpec {
	return swarm.ConfigSpec{Annotations: annotationsToMoby(c.GetAnnotations()), Data: cloneBytes(c.GetData())}
}

// ConfigSpecFromMoby returns shoal's spec for POST /configs/create or
// /configs/{id}/update.
func ConfigSpecFromMoby(c swarm.ConfigSpec) (*api.ConfigSpec, error) {
	if t := c.Templating; t != nil && (t.Name != "" || len(t.Options) > 0) {
		return nil, unsupported("Templating", "shoal mounts config data as given, without templating")
	}
	return &api.ConfigSpec{Annotations: annotationsFromMoby(c.Annotations), Data: cloneBytes(c.Data)}, nil
}

func cloneBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
