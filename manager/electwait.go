package manager

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/manager/dispatcher"
)

// A call meant for the leader that reaches a follower while there is no
// leader, but a majority of the managers is reachable (an election is under
// way), waits for the election's outcome, for at most an election timeout
// and the call's deadline, and then goes on as if it had arrived then:
// forwarded to the new leader, served here if this manager won, or refused
// with the usual "no leader" error if none emerged. Failing it at once
// only made the caller come back: after a leader kill at 10,000 nodes every
// agent's session ended at once, and their retries on "no leader" (several
// each within the election's second) were load on the two survivors whose
// vote messages the election waited on. A CLI call during a failover now
// waits a second instead of failing. A call is never held when quorum is
// lost (it fails at once, saying so), nor when forwarded by another
// manager.

// leaderWatch wakes the calls waiting for a leader: one raft subscription
// for all of them (SubscribeLeadership takes the raft member's lock, which
// 10,000 waiting calls must not each take).
type leaderWatch struct {
	mu sync.Mutex
	ch chan struct{} // closed and replaced on every leadership change
}

func newLeaderWatch() *leaderWatch { return &leaderWatch{ch: make(chan struct{})} }

// changed returns a channel closed at the next leadership change.
func (w *leaderWatch) changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

func (w *leaderWatch) notify() {
	w.mu.Lock()
	close(w.ch)
	w.ch = make(chan struct{})
	w.mu.Unlock()
}

// watchLeadership wakes the held calls when a leader becomes known, until
// ctx ends. Raft's other notifications (a candidate back to follower, at
// every campaign round) wake nobody: each wake-up of 10,000 held calls is
// 10,000 goroutines taking the raft member's lock, which delayed the
// survivors' vote messages by seconds in a 10,000-node failover.
func (m *Manager) watchLeadership(ctx context.Context, started chan<- struct{}) {
	sub, unsubscribe := m.node.SubscribeLeadership()
	defer unsubscribe()
	close(started)
	var known uint64
	for {
		select {
		case <-sub:
			if lead := m.node.Leader(); lead != known {
				known = lead
				if lead != 0 {
					m.leaders.notify()
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

// electing tells whether this manager knows no leader while a majority of
// the managers is reachable.
func (m *Manager) electing() bool {
	return m.node.Leader() == 0 && errors.Is(m.node.LeaderError(), errdefs.ErrNoLeader)
}

// awaitLeader holds a call for the leader while an election is under way
// (see above).
func (m *Manager) awaitLeader(ctx context.Context, method string) {
	if !leaderServices[serviceOf(method)] || IsForwarded(ctx) || m.cfg.ElectionHold < 0 {
		return
	}
	bound := m.holdBound()
	if awaitElection(ctx, m.leaders, m.electing, m.cfg.Clock, bound) {
		m.heldCalls.Add(1)
	}
}

// awaitElection waits while electing says so, waking at each change w
// signals, for at most bound; it reports whether it waited at all.
func awaitElection(ctx context.Context, w *leaderWatch, electing func() bool, clock clockwork.Clock, bound time.Duration) bool {
	changed := w.changed() // before the check: a change after it closes this one
	if !electing() {
		return false
	}
	t := clock.NewTimer(bound)
	defer t.Stop()
	for {
		select {
		case <-changed:
		case <-t.Chan():
			return true
		case <-ctx.Done():
			return true
		}
		changed = w.changed()
		if !electing() {
			return true
		}
	}
}

// holdBound is how long a call is held for a leader to emerge or to start
// serving: Config.ElectionHold, else an election timeout; negative: never.
func (m *Manager) holdBound() time.Duration {
	if m.cfg.ElectionHold != 0 {
		return m.cfg.ElectionHold
	}
	return m.node.ElectionTimeout()
}

// servingDispatcher returns the dispatcher of this manager's leadership
// once it serves. A call that reaches a leader whose control loops are
// still starting (the barrier that applies what the earlier leaders
// committed, then the dispatcher's own start) waits for them, at most
// holdBound, instead of failing with "not running a dispatcher": each
// such failure doubled an agent's reconnect backoff, and after leader
// kills at 10,000 nodes thousands of agents went minutes without a
// session. nil when this manager does not lead, or its dispatcher did not
// start within the bound or ctx.
func (m *Manager) servingDispatcher(ctx context.Context) *dispatcher.Dispatcher {
	d, changed := m.dispatcherAndChange()
	if d != nil {
		select {
		case <-d.Started():
			return d
		default:
		}
	}
	bound := m.holdBound()
	if bound < 0 || (d == nil && !m.node.IsLeader()) {
		return d
	}
	t := m.cfg.Clock.NewTimer(bound)
	defer t.Stop()
	for d == nil {
		select {
		case <-changed:
		case <-t.Chan():
			return nil
		case <-ctx.Done():
			return nil
		}
		d, changed = m.dispatcherAndChange()
		if d == nil && !m.node.IsLeader() {
			return nil
		}
	}
	select {
	case <-d.Started():
	case <-t.Chan():
	case <-ctx.Done():
	}
	return d // its own ready check words a start that did not come
}

// dispatcherAndChange is the current dispatcher (nil while not leading)
// and a channel closed at the next change of it.
func (m *Manager) dispatcherAndChange() (*dispatcher.Dispatcher, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dispatcher, m.leadChanged
}
