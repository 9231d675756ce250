package controlapi

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// TestUnlockKeyLifecycle: turning autolock on makes a key, only
// GetUnlockKey returns it, a rotation replaces it, turning autolock off
// drops it, and rotating without autolock is refused.
func TestUnlockKeyLifecycle(t *testing.T) {
	ctx := context.Background()
	store := raftstore.NewStandaloneStore(nil)
	s := New(store, nil, nil)
	if err := store.Update(ctx, func(tx *raftstore.Tx) error {
		return tx.Create(&api.Cluster{Id: "c1", Spec: &api.ClusterSpec{Annotations: &api.Annotations{Name: "default"}},
			RootCa: &api.RootCA{JoinTokens: &api.JoinTokens{}}})
	}); err != nil {
		t.Fatal(err)
	}
	key := func() string {
		t.Helper()
		r, err := s.GetUnlockKey(ctx, &api.GetUnlockKeyRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetUnlockKey()
	}
	update := func(autolock, rotate bool) (*api.Cluster, error) {
		t.Helper()
		c, err := s.GetCluster(ctx, &api.GetClusterRequest{})
		if err != nil {
			t.Fatal(err)
		}
		spec := proto.Clone(c.Cluster.Spec).(*api.ClusterSpec)
		spec.Encryption = &api.EncryptionSettings{AutoLockManagers: autolock}
		r, err := s.UpdateCluster(ctx, &api.UpdateClusterRequest{ClusterVersion: c.Cluster.Meta.Version, Spec: spec,
			Rotation: &api.KeyRotation{ManagerUnlockKey: rotate}})
		return r.GetCluster(), err
	}
	if k := key(); k != "" {
		t.Fatalf("unlock key %q with autolock off", k)
	}
	if _, err := update(false, true); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("rotation without autolock: %v, want a refusal", err)
	}
	c, err := update(true, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.GetUnlockKey()) != 0 {
		t.Fatal("UpdateCluster returned the unlock key")
	}
	k1 := key()
	if _, err := pki.ParseUnlockKey(k1); err != nil {
		t.Fatalf("unlock key %q after autolock on: %v", k1, err)
	}
	for _, read := range []func() *api.Cluster{
		func() *api.Cluster { r, _ := s.GetCluster(ctx, &api.GetClusterRequest{}); return r.GetCluster() },
		func() *api.Cluster {
			r, _ := s.ListClusters(ctx, &api.ListClustersRequest{})
			return r.GetClusters()[0]
		},
	} {
		if c := read(); len(c.GetUnlockKey()) != 0 || c.GetSpec() == nil {
			t.Fatal("a cluster read returned the unlock key")
		}
	}
	if _, err := update(true, false); err != nil || key() != k1 {
		t.Fatalf("an unrelated update changed the key (%v)", err)
	}
	if _, err := update(true, true); err != nil {
		t.Fatal(err)
	}
	k2 := key()
	if k2 == k1 || k2 == "" {
		t.Fatalf("rotation: %q -> %q", k1, k2)
	}
	if _, err := update(false, false); err != nil {
		t.Fatal(err)
	}
	if k := key(); k != "" {
		t.Fatalf("unlock key %q after autolock off", k)
	}
	store.View(func(tx raftstore.ReadTx) {
		if len(tx.Cluster("c1").UnlockKey) != 0 {
			t.Error("the store still holds an unlock key with autolock off")
		}
	})
}
