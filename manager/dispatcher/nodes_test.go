package dispatcher

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/manager/internal/storetest"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Many nodes changing at once share transactions; a change that leaves the
// node as it is writes nothing; a missing node fails alone.
func TestNodeWriterBatches(t *testing.T) {
	store, _ := storetest.New(clockwork.NewFakeClock())
	const n = 500
	var objs []raftstore.Object
	for i := 0; i < n; i++ {
		objs = append(objs, readyNode(fmt.Sprintf("n%d", i)))
	}
	storetest.Seed(t, store, objs...)
	w := newNodeWriter(store)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	started := false
	defer func() {
		cancel()
		if started {
			<-done
		}
	}()

	ready := func(n *api.Node) { n.Status = &api.NodeStatus{State: api.NodeStatus_READY, Addr: "10.0.0.1"} }
	before := store.Version()
	var wg sync.WaitGroup
	errs := make([]error, n+1)
	for i := 0; i <= n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.submit(ctx, fmt.Sprintf("n%d", i), ready) // n<n> does not exist
		}()
	}
	// The writer starts once every change is queued, as when thousands of
	// sessions open while a batch commits: how many arrive during a write
	// depends on the store's speed, and a store without raft writes at
	// once (the test then counted the goroutines' pace, not the batching).
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.mu.Lock()
		queued := len(w.pending)
		w.mu.Unlock()
		if queued == n+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d changes queued after 10 s", queued, n+1)
		}
		time.Sleep(time.Millisecond)
	}
	started = true
	go func() { defer close(done); w.run(ctx) }()
	wg.Wait()
	for i, err := range errs[:n] {
		if err != nil {
			t.Fatalf("node n%d: %v", i, err)
		}
	}
	if !errdefs.IsNotFound(errs[n]) {
		t.Fatalf("missing node: %v, want NotFound", errs[n])
	}
	writes := store.Version() - before
	if writes == 0 || writes > n/10 {
		t.Fatalf("%d nodes made ready in %d raft writes, want a few batches", n, writes)
	}
	store.View(func(tx raftstore.ReadTx) {
		for i := 0; i < n; i++ {
			if st := tx.Node(fmt.Sprintf("n%d", i)).GetStatus(); st.GetState() != api.NodeStatus_READY {
				t.Fatalf("n%d: %v", i, st)
			}
		}
	})
	// The same change again: nothing to write.
	before = store.Version()
	if err := w.submit(ctx, "n1", ready); err != nil {
		t.Fatal(err)
	}
	if v := store.Version(); v != before {
		t.Fatalf("an unchanged node was written (version %d -> %d)", before, v)
	}
}
