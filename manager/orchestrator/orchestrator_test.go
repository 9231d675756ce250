package orchestrator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// lateProposer applies transactions in order, like raft; the first task
// creation "times out" for its proposer and is only applied when the next
// proposal is made (it was committed late).
type lateProposer struct {
	s    *raftstore.Store
	mu   sync.Mutex
	idx  uint64
	late []byte
	done bool
}

func (p *lateProposer) Propose(_ context.Context, cmd raftstore.Command, payload []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.late != nil {
		p.idx++
		_ = p.s.Apply(p.idx, p.late)
		p.late = nil
	}
	p.idx++
	tx, ok, err := raftstore.TransactionOf(cmd, payload)
	if !ok || err != nil {
		p.s.MarkApplied(p.idx)
		return err
	}
	if !p.done {
		p.done = true
		p.idx--
		p.late = append([]byte(nil), tx...)
		return errdefs.DeadlineExceeded("timed out waiting for the write to commit")
	}
	return p.s.Apply(p.idx, tx)
}

// A create whose outcome was unknown (it timed out, then committed) must
// not lead the orchestrator to create the same slots a second time: with
// one transaction of creates, and with 3,500 replicas, whose four
// transactions are in flight together (the first is the late one).
func TestLateCommitCreatesNoDuplicateSlots(t *testing.T) {
	for _, replicas := range []uint64{5, 3500} {
		t.Run(fmt.Sprint(replicas), func(t *testing.T) { lateCommitCreatesNoDuplicateSlots(t, replicas) })
	}
}

func lateCommitCreatesNoDuplicateSlots(t *testing.T, replicas uint64) {
	store := raftstore.NewStore(nil)
	p := &lateProposer{s: store, done: true}
	store.SetProposer(p)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	createWeb(t, ctx, store, replicas)
	p.mu.Lock()
	p.done = false // the orchestrator's first write is the late one
	p.mu.Unlock()
	o := New(store, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan struct{})
	go func() { defer close(done); _ = o.Run(ctx) }()
	defer func() { cancel(); <-done }()
	testutil.EventuallyErr(t, 10*time.Second, 10*time.Millisecond, func() error {
		var n int
		store.View(func(tx raftstore.ReadTx) { n = len(tx.TasksByService("svc1")) })
		p.mu.Lock()
		settled := p.done && p.late == nil
		p.mu.Unlock()
		if !settled || n < int(replicas) {
			return fmt.Errorf("%d tasks, late write settled: %v", n, settled)
		}
		return nil
	}, "every replica's task and the late write settled")
	// No duplicate over several retry periods (50 ms each).
	testutil.ConsistentlyErr(t, 300*time.Millisecond, 10*time.Millisecond, func() error {
		slots := map[uint64]int{}
		store.View(func(tx raftstore.ReadTx) {
			for _, task := range tx.TasksByService("svc1") {
				slots[task.Slot]++
			}
		})
		for slot, n := range slots {
			if n != 1 {
				return fmt.Errorf("slot %d has %d tasks", slot, n)
			}
		}
		if len(slots) != int(replicas) {
			return fmt.Errorf("%d slots, want %d", len(slots), replicas)
		}
		return nil
	}, "one task per slot")
}

// createWeb creates service svc1 ("web", busybox) with replicas replicas.
func createWeb(t *testing.T, ctx context.Context, store *raftstore.Store, replicas uint64) *api.Service {
	t.Helper()
	svc := &api.Service{Id: "svc1", SpecVersion: 1, Spec: &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "web"},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "busybox"}},
		Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: replicas}},
	}}
	if err := store.Update(ctx, func(tx *raftstore.Tx) error { return tx.Create(svc) }); err != nil {
		t.Fatal(err)
	}
	return svc
}
