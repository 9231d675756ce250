// Package storetest gives the manager's unit tests a store without raft
// whose proposer records every transaction, in the style of Nomad's
// scheduler Harness: a loop runs against the real state machine (versions,
// checks, watches) and the test reads back the writes it made, or makes
// them fail on command.
//
// Proposer is safe for concurrent use; transactions apply in the order
// they are proposed, like raft's.
package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Proposer applies proposals to its store at once and records them.
type Proposer struct {
	mu     sync.Mutex
	s      *raftstore.Store
	index  uint64
	txs    []*api.Transaction
	noops  int
	refuse func(*api.Transaction) error
}

// New returns a store wired to a recording proposer.
func New(clock clockwork.Clock) (*raftstore.Store, *Proposer) {
	s := raftstore.NewStore(clock)
	p := &Proposer{s: s}
	s.SetProposer(p)
	return s, p
}

// Propose implements raftstore.Proposer.
func (p *Proposer) Propose(_ context.Context, cmd raftstore.Command, payload []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	raw, isTx, err := raftstore.TransactionOf(cmd, payload)
	if err != nil {
		return err
	}
	if !isTx {
		p.noops++
		p.index++
		p.s.MarkApplied(p.index)
		return nil
	}
	var tx api.Transaction
	if err := proto.Unmarshal(raw, &tx); err != nil {
		return err
	}
	if p.refuse != nil {
		if err := p.refuse(&tx); err != nil {
			return err
		}
	}
	p.index++
	if err := p.s.Apply(p.index, append([]byte(nil), raw...)); err != nil {
		return err
	}
	p.txs = append(p.txs, &tx)
	return nil
}

// Refuse makes every transaction for which fn returns an error fail with
// it (nothing applied); nil accepts all again.
func (p *Proposer) Refuse(fn func(*api.Transaction) error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = fn
}

// Transactions returns the transactions applied so far, oldest first.
func (p *Proposer) Transactions() []*api.Transaction {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*api.Transaction(nil), p.txs...)
}

// Noops counts the no-ops proposed (Store.Sync).
func (p *Proposer) Noops() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.noops
}

// Objects returns the objects written by a transaction, in order.
func Objects(tx *api.Transaction) []raftstore.Object {
	var out []raftstore.Object
	for _, a := range tx.GetActions() {
		out = append(out, raftstore.Unwrap(a.GetObject()))
	}
	return out
}

// Seed creates objs in one transaction, after a bare service (named by its
// ID) for each task whose service is not in the store or among objs.
func Seed(t testing.TB, s *raftstore.Store, objs ...raftstore.Object) {
	t.Helper()
	err := s.Update(context.Background(), func(tx *raftstore.Tx) error {
		for _, o := range objs {
			if sv, ok := o.(*api.Service); ok {
				if err := tx.Create(sv); err != nil {
					return err
				}
			}
		}
		for _, o := range objs {
			if tk, ok := o.(*api.Task); ok && tk.ServiceId != "" && tx.Service(tk.ServiceId) == nil {
				sv := &api.Service{Id: tk.ServiceId, Spec: &api.ServiceSpec{Annotations: &api.Annotations{Name: tk.ServiceId}}}
				if err := tx.Create(sv); err != nil {
					return err
				}
			}
		}
		for _, o := range objs {
			if _, ok := o.(*api.Service); ok {
				continue
			}
			if err := tx.Create(o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Task returns the task's current state in s, nil if none.
func Task(s *raftstore.Store, id string) *api.Task {
	var t *api.Task
	s.View(func(tx raftstore.ReadTx) { t = tx.Task(id) })
	return t
}

// Start runs a loop's Run in a goroutine until the test ends.
func Start(t testing.TB, run func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("the loop did not stop within 5 s of its context's end")
		}
	})
}

// Eventually polls cond (every millisecond of real time, at most 5 s)
// until it holds; a loop's goroutine is not waited for otherwise.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5 s: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// BlockUntil waits (at most 5 s) until n timers wait on clock.
func BlockUntil(t testing.TB, clock *clockwork.FakeClock, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := clock.BlockUntilContext(ctx, n); err != nil {
		t.Fatalf("%d timers did not wait on the clock within 5 s", n)
	}
}

// Remove deletes the task id.
func Remove(s *raftstore.Store, id string) error {
	return s.Update(context.Background(), func(tx *raftstore.Tx) error { return tx.Delete(tx.Task(id)) })
}
