package raftstore

import (
	"context"
	"sync"

	"github.com/jonboulle/clockwork"
)

// NewStandaloneStore returns a store whose transactions apply at once, in
// order, without raft: the state machine alone, for tests of the packages
// built on the store (the same Apply, versions, checks and watches as a
// replicated store). Safe for concurrent use.
func NewStandaloneStore(clock clockwork.Clock) *Store {
	s := NewStore(clock)
	s.SetProposer(&standalone{s: s})
	return s
}

type standalone struct {
	mu    sync.Mutex
	s     *Store
	index uint64
}

func (p *standalone) Propose(_ context.Context, cmd Command, payload []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.index++
	tx, ok, err := TransactionOf(cmd, payload)
	if !ok || err != nil {
		p.s.MarkApplied(p.index)
		return err
	}
	return p.s.Apply(p.index, append([]byte(nil), tx...))
}
