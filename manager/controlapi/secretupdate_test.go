package controlapi

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

func TestUpdateSecretLabelsOnly(t *testing.T) {
	s, _ := newTestServer(t)
	ctx := context.Background()
	created, err := s.CreateSecret(ctx, &api.CreateSecretRequest{Spec: &api.SecretSpec{
		Annotations: &api.Annotations{Name: "db", Labels: map[string]string{"a": "1"}}, Data: []byte("hunter2")}})
	if err != nil {
		t.Fatal(err)
	}
	v := created.Secret.GetMeta().GetVersion()

	// A stack redeploy: same name and data, new labels, by name.
	got, err := s.UpdateSecret(ctx, &api.UpdateSecretRequest{SecretId: "db", SecretVersion: v, Spec: &api.SecretSpec{
		Annotations: &api.Annotations{Name: "db", Labels: map[string]string{"b": "2"}}, Data: []byte("hunter2")}})
	if err != nil {
		t.Fatalf("same data, new labels: %v", err)
	}
	if l := got.Secret.GetSpec().GetAnnotations().GetLabels(); len(l) != 1 || l["b"] != "2" {
		t.Fatalf("labels after update: %v, want b=2", l)
	}
	if got.Secret.GetSpec().GetData() != nil || got.Secret.GetSealed() != nil {
		t.Fatal("UpdateSecret returned the secret's data")
	}
	if got.Secret.GetDigest() != created.Secret.GetDigest() {
		t.Fatal("the digest changed on a label update")
	}
	// The data still opens to the same bytes: nothing but labels changed.
	read, _ := s.GetSecret(ctx, &api.GetSecretRequest{SecretId: created.Secret.Id})
	if read.Secret.GetMeta().GetVersion() <= v {
		t.Fatalf("version %d did not move past %d", read.Secret.GetMeta().GetVersion(), v)
	}

	// Without data: labels only, as `docker secret` would send them.
	if _, err := s.UpdateSecret(ctx, &api.UpdateSecretRequest{SecretId: created.Secret.Id, Spec: &api.SecretSpec{
		Annotations: &api.Annotations{Name: "db"}}}); err != nil {
		t.Fatalf("labels only, no data: %v", err)
	}

	cases := []struct {
		name string
		req  *api.UpdateSecretRequest
		cls  error
		msg  string
	}{
		{"new data", &api.UpdateSecretRequest{SecretId: "db", Spec: &api.SecretSpec{Annotations: &api.Annotations{Name: "db"}, Data: []byte("other")}},
			errdefs.ErrInvalidArgument, "only updates to Labels are allowed"},
		{"new name", &api.UpdateSecretRequest{SecretId: "db", Spec: &api.SecretSpec{Annotations: &api.Annotations{Name: "db2"}}},
			errdefs.ErrInvalidArgument, "only updates to Labels are allowed"},
		{"stale version", &api.UpdateSecretRequest{SecretId: "db", SecretVersion: v, Spec: &api.SecretSpec{Annotations: &api.Annotations{Name: "db"}}},
			errdefs.ErrConflict, "update out of sequence"},
		{"unknown", &api.UpdateSecretRequest{SecretId: "nope", Spec: &api.SecretSpec{Annotations: &api.Annotations{Name: "nope"}}},
			errdefs.ErrNotFound, "secret nope not found"},
		{"no spec", &api.UpdateSecretRequest{SecretId: "db"}, errdefs.ErrInvalidArgument, "secret spec is missing"},
	}
	for _, c := range cases {
		_, err := s.UpdateSecret(ctx, c.req)
		if err == nil || !errors.Is(err, c.cls) || !strings.HasPrefix(err.Error(), c.msg) {
			t.Errorf("%s: got %v, want %v starting %q", c.name, err, c.cls, c.msg)
		}
	}
}

func TestUpdateConfigLabelsOnly(t *testing.T) {
	s, _ := newTestServer(t)
	ctx := context.Background()
	created, err := s.CreateConfig(ctx, &api.CreateConfigRequest{Spec: &api.ConfigSpec{
		Annotations: &api.Annotations{Name: "nginx.conf"}, Data: []byte("server {}")}})
	if err != nil {
		t.Fatal(err)
	}
	v := created.Config.GetMeta().GetVersion()
	got, err := s.UpdateConfig(ctx, &api.UpdateConfigRequest{ConfigId: "nginx.conf", ConfigVersion: v, Spec: &api.ConfigSpec{
		Annotations: &api.Annotations{Name: "nginx.conf", Labels: map[string]string{"com.docker.stack.namespace": "app"}}, Data: []byte("server {}")}})
	if err != nil {
		t.Fatalf("same data, new labels: %v", err)
	}
	if got.Config.GetSpec().GetAnnotations().GetLabels()["com.docker.stack.namespace"] != "app" || string(got.Config.GetSpec().GetData()) != "server {}" {
		t.Fatalf("after update: %v", got.Config.GetSpec())
	}
	_, err = s.UpdateConfig(ctx, &api.UpdateConfigRequest{ConfigId: "nginx.conf", Spec: &api.ConfigSpec{
		Annotations: &api.Annotations{Name: "nginx.conf"}, Data: []byte("server { listen 80; }")}})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.HasPrefix(err.Error(), "only updates to Labels are allowed") {
		t.Fatalf("new data: got %v, want Docker's refusal", err)
	}
	_, err = s.UpdateConfig(ctx, &api.UpdateConfigRequest{ConfigId: "nginx.conf", ConfigVersion: v, Spec: &api.ConfigSpec{
		Annotations: &api.Annotations{Name: "nginx.conf"}}})
	if !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("stale version: got %v, want a conflict", err)
	}
	read, _ := s.GetConfig(ctx, &api.GetConfigRequest{ConfigId: "nginx.conf"})
	if string(read.Config.GetSpec().GetData()) != "server {}" {
		t.Fatalf("data changed by refused updates: %q", read.Config.GetSpec().GetData())
	}
}
