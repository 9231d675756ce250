package orchestrator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// gateProposer applies the first `open` transactions at once and holds
// every later one until release is closed (or its context ends).
type gateProposer struct {
	s       *raftstore.Store
	mu      sync.Mutex
	idx     uint64
	open    int
	release chan struct{}
}

func (p *gateProposer) Propose(ctx context.Context, cmd raftstore.Command, payload []byte) error {
	p.mu.Lock()
	held := p.open <= 0
	p.open--
	p.mu.Unlock()
	if held {
		select {
		case <-p.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.idx++
	return p.s.ApplyProposal(p.idx, cmd, payload)
}

// The orchestrator's copies of the tasks a pass creates are let go part
// by part, as each part's write ends, not when the last one does: at
// 1,000,000 replicas they were about 300 MB of the leader's heap for the
// whole create. Six parts of creates, four in flight; only the first
// write commits while the others wait.
func TestCreatedTasksReleasedAsPartsCommit(t *testing.T) {
	const replicas = 6 * raftstore.BatchItems
	store := raftstore.NewStore(nil)
	p := &gateProposer{s: store, open: 1 << 30, release: make(chan struct{})}
	store.SetProposer(p)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc := createWeb(t, ctx, store, replicas)
	var in Input
	store.View(func(tx raftstore.ReadTx) {
		in = Input{ServiceID: svc.Id, Service: tx.Service(svc.Id), Now: time.Now()}
	})
	acts := Reconcile(in)
	if len(acts.Create) != replicas {
		t.Fatalf("Reconcile creates %d tasks, want %d", len(acts.Create), replicas)
	}
	refs := make([]weak.Pointer[api.Task], len(acts.Create))
	for i, task := range acts.Create {
		refs[i] = weak.Make(task)
	}
	collected := func() int {
		runtime.GC()
		n := 0
		for _, r := range refs {
			if r.Value() == nil {
				n++
			}
		}
		return n
	}
	p.mu.Lock()
	p.open = 1
	p.mu.Unlock()
	o := New(store, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan error, 1)
	go func(a Actions) { done <- o.apply(ctx, a) }(acts)
	acts = Actions{}
	testutil.EventuallyErr(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n := collected(); n < raftstore.BatchItems {
			return fmt.Errorf("%d of %d created tasks collectable", n, replicas)
		}
		return nil
	}, "the committed part's tasks let go while the other parts wait")
	close(p.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var stored int
	store.View(func(tx raftstore.ReadTx) { stored = len(tx.TasksByService(svc.Id)) })
	if stored != replicas {
		t.Fatalf("%d tasks stored, want %d", stored, replicas)
	}
}
