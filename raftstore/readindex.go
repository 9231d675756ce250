package raftstore

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"go.etcd.io/raft/v3"

	"github.com/shoal-project/shoal/errdefs"
)

// Linearizable reads are coalesced: at most one raft ReadIndex round is in
// flight per member, and every LinearizableRead that arrives while it is
// shares the next round. A round costs one heartbeat to the followers, so
// a thousand concurrent reads (every Control call on the leader passes a
// read barrier) cost a few rounds, not a thousand. A caller joins only a
// round sent after it arrived, so the index it waits for covers every write
// acknowledged before its call.

// readRoundTimeout bounds one round; a caller's own deadline may end its
// wait sooner.
const readRoundTimeout = 5 * time.Second

// readRound is one ReadIndex request and its outcome, shared by the callers
// that joined it.
type readRound struct {
	done  chan struct{} // closed once index or err is set
	index uint64
	err   error
}

// readBatcher holds the round being filled while another is in flight.
type readBatcher struct {
	mu      sync.Mutex
	running bool       // a round goroutine is running
	next    *readRound // callers for the round after the one in flight
}

// join returns the round the caller waits for, and whether the caller must
// start the round goroutine (none is running).
func (b *readBatcher) join() (*readRound, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.next == nil {
		b.next = &readRound{done: make(chan struct{})}
	}
	r := b.next
	if b.running {
		return r, false
	}
	b.running, b.next = true, nil
	return r, true
}

// following returns the round filled meanwhile, or nil (and the goroutine
// ends) when nobody joined.
func (b *readBatcher) following() *readRound {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.next
	b.next = nil
	if r == nil {
		b.running = false
	}
	return r
}

// LinearizableRead returns once the local store reflects every write
// acknowledged before the call, on the leader or on a follower (ReadIndex).
// On a leader it fails at once (Unavailable) when the member stops leading
// during the read.
func (n *Node) LinearizableRead(ctx context.Context) error {
	if err := n.accepting(); err != nil {
		return err
	}
	r, start := n.readBatch.join()
	if start {
		go n.runReadRounds(r)
	}
	select {
	case <-r.done:
		if r.err != nil {
			return r.err
		}
	case <-ctx.Done():
		if n.Leader() == raft.None {
			return n.unavailable()
		}
		return n.ctxError(ctx, ctx.Err())
	case <-n.done:
		return errdefs.ErrStopped
	}
	return n.WaitApplied(ctx, r.index)
}

// runReadRounds runs r and then the rounds filled while each ran, until
// one finds no caller. Every round ends within readRoundTimeout, or at
// once when the node stops.
func (n *Node) runReadRounds(r *readRound) {
	for r != nil {
		r.index, r.err = n.readIndexRound()
		close(r.done)
		r = n.readBatch.following()
	}
}

// readIndexRound asks raft for a read index: the commit index once a
// quorum has confirmed this member's leader still leads.
func (n *Node) readIndexRound() (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), readRoundTimeout)
	defer cancel()
	leading, unsubscribe := n.SubscribeLeadership()
	defer unsubscribe()
	wasLeader := n.IsLeader()
	if !wasLeader && n.Leader() == raft.None {
		return 0, n.unavailable() // raft drops a read without a leader
	}
	n.readRounds.Add(1)
	id := n.reqBase | (n.reqSeq.Add(1) & 0xffffffff)
	ch := make(chan uint64, 1)
	n.mu.Lock()
	n.reads[id] = ch
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.reads, id)
		n.mu.Unlock()
	}()
	intr := n.interrupted()
	if df := n.fault.Load(); df != nil {
		return 0, df
	}
	if err := n.raft.ReadIndex(ctx, binary.BigEndian.AppendUint64(nil, id)); err != nil {
		if errors.Is(err, raft.ErrStopped) {
			return 0, n.faultOr(errdefs.ErrStopped)
		}
		return 0, n.readTimeout(ctx, err)
	}
	for {
		select {
		case index := <-ch:
			return index, nil
		case <-leading:
			if wasLeader && !n.IsLeader() {
				return 0, errLostLeadershipRead
			}
			if n.Leader() == raft.None {
				return 0, n.unavailable() // the request went with the leader
			}
		case <-intr:
			return 0, n.faultOr(errdefs.ErrStopped)
		case <-ctx.Done():
			return 0, n.readTimeout(ctx, ctx.Err())
		case <-n.done:
			return 0, errdefs.ErrStopped
		}
	}
}

// errLostLeadershipRead is a read on a leader that stepped down before a
// quorum confirmed it.
var errLostLeadershipRead = errdefs.New(errdefs.ErrUnavailable, "this manager stopped leading before a majority of the managers confirmed its leadership for the read: read again (it is served by the new leader)")

// readTimeout explains a round that did not finish.
func (n *Node) readTimeout(ctx context.Context, err error) error {
	if n.Leader() == raft.None {
		return n.unavailable()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errdefs.Newf(errdefs.ErrDeadlineExceeded, "timed out confirming with a majority of the managers that the leader still leads (%s)", n.QuorumStatus())
	}
	return err
}
