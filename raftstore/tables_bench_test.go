package raftstore

import (
	"crypto/rand"
	"math/big"
	mrand "math/rand"
	"strings"
	"testing"

	api "github.com/shoal-project/shoal/proto"
)

// BenchmarkTableGetAt1M looks up random IDs in a tree by ID of 1,000,000
// objects whose IDs are random 25-character base-36 strings, each in an
// allocation of its own (as decoded objects hold them): what the store's
// reads and writes by ID cost at that size, where each compared ID read
// from memory is a cache miss. One op is one lookup.
func BenchmarkTableGetAt1M(b *testing.B) {
	const n = 1_000_000
	t, ids := tableAt(b, n)
	rng := mrand.New(mrand.NewSource(1))
	b.ResetTimer()
	for range b.N {
		if t.get(ids[rng.Intn(n)]) == nil {
			b.Fatal("an ID was not found")
		}
	}
}

// BenchmarkTableReplaceAt1M replaces 1,000 objects at random IDs in a
// writable clone of the same table (the clone then replaces the table):
// what one transaction of 1,000 task writes costs the by-ID tree at that
// size, mostly the copy-on-write copies of the nodes on each write's path.
// One op is one transaction of 1,000 replaces.
func BenchmarkTableReplaceAt1M(b *testing.B) {
	const n = 1_000_000
	t, ids := tableAt(b, n)
	objs := make([]*api.Node, n)
	for i, id := range ids {
		objs[i] = &api.Node{Id: id}
	}
	rng := mrand.New(mrand.NewSource(1))
	b.ResetTimer()
	for range b.N {
		c := t.clone()
		for range 1000 {
			c.put(objs[rng.Intn(n)])
		}
		t = c
	}
}

// tableAt is a table of n nodes whose IDs are random 25-character base-36
// strings, each in an allocation of its own (as decoded objects hold
// them), and their IDs.
func tableAt(b *testing.B, n int) (*table, []string) {
	t := newTable(KindNode)
	ids := randomIDs(b, n)
	for _, id := range ids {
		t.put(&api.Node{Id: id})
	}
	return t, ids
}

// randomIDs returns n random 25-character base-36 IDs, as ids.New makes.
func randomIDs(b *testing.B, n int) []string {
	ids := make([]string, n)
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for i := range ids {
		v, err := rand.Int(rand.Reader, limit)
		if err != nil {
			b.Fatal(err)
		}
		id := v.Text(36)
		ids[i] = strings.Repeat("0", max(0, 25-len(id))) + id
	}
	return ids
}

// BenchmarkTaskTableReplaceAt1M replaces 1,000 tasks at random in a
// writable clone of a task table of 1,000,000 tasks of one service on
// 10,000 nodes (by-ID, by-service and by-node trees), each by a new
// version on the same node, as a status report does: what one transaction
// of 1,000 task updates costs the task trees at that size. One op is one
// transaction of 1,000 replaces.
func BenchmarkTaskTableReplaceAt1M(b *testing.B) {
	const n = 1_000_000
	ids := randomIDs(b, n)
	nodes := randomIDs(b, 10_000)
	svc := randomIDs(b, 1)[0]
	t := newTable(KindTask)
	tasks := make([]*api.Task, n)
	for i, id := range ids {
		tasks[i] = &api.Task{Id: id, ServiceId: svc, NodeId: nodes[i%len(nodes)]}
		t.put(tasks[i])
	}
	rng := mrand.New(mrand.NewSource(1))
	b.ResetTimer()
	for range b.N {
		c := t.clone()
		for range 1000 {
			i := rng.Intn(n)
			old := tasks[i]
			tasks[i] = &api.Task{Id: old.Id, ServiceId: old.ServiceId, NodeId: old.NodeId}
			c.put(tasks[i])
		}
		t = c
	}
}
