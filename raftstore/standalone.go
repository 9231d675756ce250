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
	return p.s.ApplyProposal(p.index, cmd, payload)
}

// ApplyProposal applies one proposal at index as a replica applies its
// committed entry: a transaction is applied; anything else (a sync) only
// marks the index applied. For proposers without raft (standalone stores,
// tests); the payload is copied, so the caller may reuse it.
func (s *Store) ApplyProposal(index uint64, cmd Command, payload []byte) error {
	tx, ok, err := TransactionOf(cmd, payload)
	if !ok || err != nil {
		s.MarkApplied(index)
		return err
	}
	return s.Apply(index, append([]byte(nil), tx...))
}
