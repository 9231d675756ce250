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
	t := newTable(KindNode)
	ids := make([]string, n)
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for i := range ids {
		v, err := rand.Int(rand.Reader, limit)
		if err != nil {
			b.Fatal(err)
		}
		id := v.Text(36)
		ids[i] = strings.Repeat("0", max(0, 25-len(id))) + id
		t.put(&api.Node{Id: ids[i]})
	}
	rng := mrand.New(mrand.NewSource(1))
	b.ResetTimer()
	for range b.N {
		if t.get(ids[rng.Intn(n)]) == nil {
			b.Fatal("an ID was not found")
		}
	}
}
