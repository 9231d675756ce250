package controlapi

import (
	"context"
	"errors"
	"sync"
	"testing"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// racingProposer applies transactions at once, like the standalone store,
// and can run a write of its own just before the next proposal: a status
// write that commits between a call's read and its commit.
type racingProposer struct {
	mu     sync.Mutex
	s      *raftstore.Store
	index  uint64
	before []func() // each runs before one proposal, in order
	inHook bool
}

func (p *racingProposer) Propose(_ context.Context, cmd raftstore.Command, payload []byte) error {
	p.mu.Lock()
	var hook func()
	if len(p.before) > 0 && !p.inHook {
		hook, p.before = p.before[0], p.before[1:]
		p.inHook = true
	}
	p.mu.Unlock()
	if hook != nil {
		hook() // proposes through p again (without a hook), before this payload
		p.mu.Lock()
		p.inHook = false
		p.mu.Unlock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.index++
	return p.s.ApplyProposal(p.index, cmd, payload)
}

// raceBefore makes each of the next len(hooks) proposals run a hook first.
func (p *racingProposer) raceBefore(hooks ...func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.before = append(p.before, hooks...)
}

// newTestServer is a Control server on a fresh store holding a cluster.
func newTestServer(t *testing.T) (*Server, *racingProposer) {
	t.Helper()
	store := raftstore.NewStore(nil)
	p := &racingProposer{s: store}
	store.SetProposer(p)
	err := store.Update(context.Background(), func(tx *raftstore.Tx) error {
		return tx.Create(&api.Cluster{Id: "cluster1", Spec: &api.ClusterSpec{Annotations: &api.Annotations{Name: "default"}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	return New(store, nil, nil), p
}

// wantError fails unless err is of class want and its message is exactly msg.
func wantError(t *testing.T, err error, class error, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", msg)
	}
	if !errors.Is(err, class) || err.Error() != msg {
		t.Fatalf("got %v (%T), want %v: %q", err, err, class, msg)
	}
}

// validSpec is a small service spec that passes validation.
func validSpec() *api.ServiceSpec {
	return &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "web"},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "127.0.0.1:5000/shoal/whoami:latest"}},
		Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 3}},
	}
}
