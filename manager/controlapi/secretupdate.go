package controlapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/specs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Secrets and configs are immutable but for their labels, as in Docker:
// `docker stack deploy` updates an existing one with the same data and new
// labels, and anything else is refused with Docker's own words.

// onlyLabels is Docker's refusal of a secret or config update that changes
// more than the labels.
func onlyLabels(kind, name string) error {
	return errdefs.InvalidArgument("only updates to Labels are allowed (%s %s: its name and data never change; create a new %s and point the services at it)", kind, name, kind)
}

// checkSameVersion refuses a version (0: none given) other than the
// object's: the labels are the only thing that changes a secret or config,
// so any later write is a user's.
func checkSameVersion(kind, name string, read, cur uint64) error {
	if read == 0 || read == cur {
		return nil
	}
	return staleVersion{errdefs.Conflict("update out of sequence: %s %s changed since it was read (you have version %d, it is at version %d); read it again and retry",
		kind, name, read, cur)}
}

// UpdateSecret changes a secret's labels. The name must stay; the data must
// be empty or equal to the stored data.
func (s *Server) UpdateSecret(ctx context.Context, req *api.UpdateSecretRequest) (*api.UpdateSecretResponse, error) {
	spec := req.GetSpec()
	if spec == nil {
		return nil, errdefs.InvalidArgument("secret spec is missing")
	}
	if err := specs.CheckUTF8("secret", spec.GetAnnotations()); err != nil {
		return nil, err
	}
	if err := specs.CheckLabels("secret label", spec.GetAnnotations().GetLabels()); err != nil {
		return nil, err
	}
	var id string
	err := s.update(ctx, func(tx *raftstore.Tx) error {
		cur, err := raftstore.Lookup(tx.ReadTx, raftstore.KindSecret, req.GetSecretId(), secretName)
		if errdefs.IsNotFound(err) {
			return errdefs.NotFound("secret %s not found", refText(req.GetSecretId()))
		}
		if err != nil {
			return err
		}
		if err := checkSameVersion("secret", secretName(cur), req.GetSecretVersion(), cur.GetMeta().GetVersion()); err != nil {
			return err
		}
		if spec.GetAnnotations().GetName() != secretName(cur) {
			return onlyLabels("secret", secretName(cur))
		}
		if len(spec.GetData()) > 0 {
			sum := sha256.Sum256(spec.GetData())
			if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(cur.GetDigest())) != 1 {
				return onlyLabels("secret", secretName(cur))
			}
		}
		next := proto.Clone(cur).(*api.Secret)
		next.Spec.Annotations.Labels = spec.GetAnnotations().GetLabels()
		id = next.Id
		return tx.Update(next)
	})
	if err != nil {
		return nil, err
	}
	var stored *api.Secret
	s.store.View(func(tx raftstore.ReadTx) { stored = tx.Secret(id) })
	if stored == nil {
		return nil, errdefs.NotFound("secret %s was removed right after its update", id)
	}
	return &api.UpdateSecretResponse{Secret: redactSecret(stored)}, nil
}

// UpdateConfig changes a config's labels. The name must stay; the data must
// be empty or equal to the stored data.
func (s *Server) UpdateConfig(ctx context.Context, req *api.UpdateConfigRequest) (*api.UpdateConfigResponse, error) {
	spec := req.GetSpec()
	if spec == nil {
		return nil, errdefs.InvalidArgument("config spec is missing")
	}
	if err := specs.CheckUTF8("config", spec.GetAnnotations()); err != nil {
		return nil, err
	}
	if err := specs.CheckLabels("config label", spec.GetAnnotations().GetLabels()); err != nil {
		return nil, err
	}
	var id string
	err := s.update(ctx, func(tx *raftstore.Tx) error {
		cur, err := raftstore.Lookup(tx.ReadTx, raftstore.KindConfig, req.GetConfigId(), configName)
		if errdefs.IsNotFound(err) {
			return errdefs.NotFound("config %s not found", refText(req.GetConfigId()))
		}
		if err != nil {
			return err
		}
		if err := checkSameVersion("config", configName(cur), req.GetConfigVersion(), cur.GetMeta().GetVersion()); err != nil {
			return err
		}
		if spec.GetAnnotations().GetName() != configName(cur) {
			return onlyLabels("config", configName(cur))
		}
		if len(spec.GetData()) > 0 && subtle.ConstantTimeCompare(spec.GetData(), cur.GetSpec().GetData()) != 1 {
			return onlyLabels("config", configName(cur))
		}
		next := proto.Clone(cur).(*api.Config)
		next.Spec.Annotations.Labels = spec.GetAnnotations().GetLabels()
		id = next.Id
		return tx.Update(next)
	})
	if err != nil {
		return nil, err
	}
	var stored *api.Config
	s.store.View(func(tx raftstore.ReadTx) { stored = tx.Config(id) })
	if stored == nil {
		return nil, errdefs.NotFound("config %s was removed right after its update", id)
	}
	return &api.UpdateConfigResponse{Config: stored}, nil
}
