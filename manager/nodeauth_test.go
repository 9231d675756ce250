package manager

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// localProposer applies every proposal at once, in order (no raft).
type localProposer struct {
	mu    sync.Mutex
	s     *raftstore.Store
	index uint64
}

func (p *localProposer) Propose(_ context.Context, cmd raftstore.Command, payload []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.index++
	return p.s.ApplyProposal(p.index, cmd, payload)
}

// TestNodeAuthFollowsStore checks after every write of a random sequence
// (nodes created, demoted, promoted, deleted; removed nodes added and
// dropped; the cluster deleted and created; the store replaced by a
// snapshot) that the in-memory sets answer exactly as a store read does,
// as soon as the write returns.
func TestNodeAuthFollowsStore(t *testing.T) {
	store := raftstore.NewStore(nil)
	p := &localProposer{s: store}
	store.SetProposer(p)
	a := newNodeAuth(store)
	rng := rand.New(rand.NewSource(1))
	ids := make([]string, 12)
	for i := range ids {
		ids[i] = fmt.Sprintf("node%d", i)
	}
	ctx := context.Background()
	update := func(fn func(tx *raftstore.Tx) error) {
		t.Helper()
		if err := store.Update(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	update(func(tx *raftstore.Tx) error { return tx.Create(&api.Cluster{Id: "c1", Spec: &api.ClusterSpec{}}) })
	restores := 0
	for step := 0; step < 600; step++ {
		id := ids[rng.Intn(len(ids))]
		what := ""
		switch op := rng.Intn(10); {
		case op < 3: // create or change the node's desired role
			role := api.NodeRole(rng.Intn(2))
			what = fmt.Sprintf("node %s desired role %v", id, role)
			update(func(tx *raftstore.Tx) error {
				n := tx.Node(id)
				if n == nil {
					return tx.Create(&api.Node{Id: id, Spec: &api.NodeSpec{DesiredRole: role}})
				}
				n = proto.Clone(n).(*api.Node)
				n.Spec.DesiredRole = role
				return tx.Update(n)
			})
		case op < 4:
			what = "delete node " + id
			update(func(tx *raftstore.Tx) error {
				if tx.Node(id) == nil {
					return nil
				}
				return tx.Delete(tx.Node(id))
			})
		case op < 7: // add or drop a removed node
			what = "toggle removed " + id
			update(func(tx *raftstore.Tx) error {
				cs := tx.Clusters()
				if len(cs) == 0 {
					return nil
				}
				c := proto.Clone(cs[0]).(*api.Cluster)
				var kept []*api.RemovedNode
				for _, r := range c.RemovedNodes {
					if r.NodeId != id {
						kept = append(kept, r)
					}
				}
				if len(kept) == len(c.RemovedNodes) {
					kept = append(kept, &api.RemovedNode{NodeId: id})
				}
				c.RemovedNodes = kept
				return tx.Update(c)
			})
		case op < 8: // delete or create the cluster (a second one, too)
			cid := fmt.Sprintf("c%d", 1+rng.Intn(2))
			what = "toggle cluster " + cid
			update(func(tx *raftstore.Tx) error {
				for _, c := range tx.Clusters() {
					if c.Id == cid {
						return tx.Delete(c)
					}
				}
				return tx.Create(&api.Cluster{Id: cid, Spec: &api.ClusterSpec{}, RemovedNodes: []*api.RemovedNode{{NodeId: id}}})
			})
		default: // a snapshot that differs from the store
			restores++
			what = "restore with " + id + " removed and a worker"
			objs, _ := store.Objects()
			var next []raftstore.Object
			for _, o := range objs {
				if _, isNode := o.(*api.Node); isNode && o.GetId() == id {
					continue
				}
				if c, isCluster := o.(*api.Cluster); isCluster {
					c = proto.Clone(c).(*api.Cluster)
					c.RemovedNodes = append(c.RemovedNodes, &api.RemovedNode{NodeId: id})
					o = c
				}
				next = append(next, o)
			}
			next = append(next, &api.Node{Id: id, Spec: &api.NodeSpec{DesiredRole: api.NodeRole_WORKER}})
			p.mu.Lock()
			p.index++
			err := store.Restore(p.index, next)
			p.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range ids {
			if got, want := a.isRemoved(n), a.readRemoved(n); got != want {
				t.Fatalf("step %d (%s): isRemoved(%s) = %v, the store says %v", step, what, n, got, want)
			}
			if got, want := a.isWorker(n), a.readWorker(n); got != want {
				t.Fatalf("step %d (%s): isWorker(%s) = %v, the store says %v", step, what, n, got, want)
			}
		}
	}
	if restores == 0 {
		t.Fatal("the sequence never restored a snapshot")
	}
}

// TestRemovalRefusedAtOnce: on a running manager, a node removed or
// demoted is refused by the very next call after the write returns.
func TestRemovalRefusedAtOnce(t *testing.T) {
	c := newTestCluster(t, 1, 0)
	m := c.members[0].m
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const victim = "victim"
	err := m.Store().Update(ctx, func(tx *raftstore.Tx) error {
		return tx.Create(simulatedNode(victim, "victim", api.NodeRole_MANAGER))
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.IsRemovedNode(victim) || m.IsDemotedNode(victim) {
		t.Fatal("a new manager node is refused")
	}
	err = updateRetryingConflicts(ctx, m.Store(), func(tx *raftstore.Tx) error {
		n := proto.Clone(tx.Node(victim)).(*api.Node)
		n.Spec.DesiredRole = api.NodeRole_WORKER
		return tx.Update(n)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !m.IsDemotedNode(victim) {
		t.Fatal("a demoted node (not a raft member) keeps a manager's rights after the write returned")
	}
	// The leader's own loops write the cluster object as they start: a
	// conflict with them is retried, as any client does.
	err = updateRetryingConflicts(ctx, m.Store(), func(tx *raftstore.Tx) error {
		cl := proto.Clone(tx.Clusters()[0]).(*api.Cluster)
		cl.RemovedNodes = append(cl.RemovedNodes, &api.RemovedNode{NodeId: victim})
		if err := tx.Update(cl); err != nil {
			return err
		}
		return tx.Delete(tx.Node(victim))
	})
	if err != nil {
		t.Fatal(err)
	}
	if !m.IsRemovedNode(victim) {
		t.Fatal("a removed node is let through after the write returned")
	}
	if m.IsDemotedNode(victim) {
		t.Fatal("a deleted node is still counted as demoted")
	}
}

// updateRetryingConflicts runs fn in a store transaction, again (up to 10
// times) while its commit loses a race with another write.
func updateRetryingConflicts(ctx context.Context, s *raftstore.Store, fn func(*raftstore.Tx) error) error {
	var err error
	for range 10 {
		if err = s.Update(ctx, fn); !errdefs.IsConflict(err) {
			return err
		}
	}
	return err
}

// BenchmarkIsRemoved compares the authorizer's question at 5,000 nodes
// and 100 removed: the store read (as before) and the in-memory sets.
func BenchmarkIsRemoved(b *testing.B) {
	store := raftstore.NewStore(nil)
	store.SetProposer(&localProposer{s: store})
	err := store.Update(context.Background(), func(tx *raftstore.Tx) error {
		c := &api.Cluster{Id: "c1", Spec: &api.ClusterSpec{}}
		for i := 0; i < 100; i++ {
			c.RemovedNodes = append(c.RemovedNodes, &api.RemovedNode{NodeId: fmt.Sprintf("gone%d", i)})
		}
		if err := tx.Create(c); err != nil {
			return err
		}
		for i := 0; i < 5000; i++ {
			if err := tx.Create(&api.Node{Id: fmt.Sprintf("n%d", i), Spec: &api.NodeSpec{DesiredRole: api.NodeRole_WORKER}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	a := newNodeAuth(store)
	b.Run("store_read", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			a.readRemoved("n42")
			a.readWorker("n42")
		}
	})
	b.Run("sets", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			a.isRemoved("n42")
			a.isWorker("n42")
		}
	})
}
