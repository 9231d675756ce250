package manager

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/manager/dispatcher"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// A call held during an election goes on at the first change that ends
// it, not at a change that leaves it electing, and at the bound when the
// election lasts; a call outside an election is not held.
func TestAwaitElection(t *testing.T) {
	clock := clockwork.NewFakeClock()
	w := newLeaderWatch()
	var electing atomic.Bool
	run := func() chan bool {
		out := make(chan bool, 1)
		go func() { out <- awaitElection(context.Background(), w, electing.Load, clock, 3*time.Second) }()
		return out
	}
	pending := func(out chan bool, what string) {
		t.Helper()
		select {
		case <-out:
			t.Fatalf("the call went on %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if waited := <-run(); waited {
		t.Fatal("held with a leader known")
	}

	electing.Store(true)
	out := run()
	pending(out, "during the election")
	w.notify() // a change that leaves it electing (a candidate lost)
	pending(out, "at a change that left no leader")
	electing.Store(false)
	w.notify()
	select {
	case waited := <-out:
		if !waited {
			t.Fatal("a held call says it was not held")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call stayed held after a leader was known")
	}

	electing.Store(true)
	out = run()
	if err := clock.BlockUntilContext(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2999 * time.Millisecond)
	pending(out, "before the bound")
	clock.Advance(time.Millisecond)
	select {
	case <-out:
	case <-time.After(5 * time.Second):
		t.Fatal("the call stayed held past the bound")
	}
}

// With quorum lost a follower fails a call for the leader at once, saying
// so, instead of holding it; once a majority is back, the leadership change
// wakes held calls (the manager's watch runs).
func TestNoLeaderCallsAreNotHeldWithoutQuorum(t *testing.T) {
	c := newTestCluster(t, 3, 0)
	l := c.leader()
	c.eventually(10*time.Second, "every manager to catch up", func() bool {
		for _, m := range c.members {
			if m.m.Raft().AppliedIndex() < l.m.Raft().AppliedIndex() {
				return false
			}
		}
		return true
	})
	var survivor, other *testMember
	for _, m := range c.members {
		if m != l {
			if survivor != nil {
				other = m
				c.stop(m)
			} else {
				survivor = m
			}
		}
	}
	c.stop(l)
	mgr := survivor.m
	c.eventually(10*time.Second, "the survivor to see quorum lost", func() bool {
		return mgr.node.LeaderMember() == nil && !mgr.electing()
	})
	began := time.Now()
	held := mgr.heldCalls.Load()
	mgr.awaitLeader(context.Background(), api.Control_ListNodes_FullMethodName)
	if took := time.Since(began); took > time.Second || mgr.heldCalls.Load() != held {
		t.Fatalf("a call was held %v with quorum lost", took)
	}
	if err := mgr.node.LeaderError(); !errdefs.IsUnavailable(err) || errors.Is(err, errdefs.ErrNoLeader) {
		t.Fatalf("quorum lost, the error is %v", err)
	}
	changed := mgr.leaders.changed()
	c.start(other, raftstore.Restart)
	select {
	case <-changed:
	case <-time.After(15 * time.Second):
		t.Fatal("no leadership change reached the held calls' watch after a majority came back")
	}
}

// A dispatcher call that reaches the leader before its control loops
// serve (the barrier after an election) waits for its dispatcher instead
// of failing with "not running a dispatcher"; a follower's does not wait.
func TestLeaderHoldsDispatcherCallsUntilItsDispatcherServes(t *testing.T) {
	c := newTestCluster(t, 2, 0)
	l := c.leader()
	mgr := l.m
	d := mgr.currentDispatcher()
	if d == nil {
		t.Fatal("the leader runs no dispatcher")
	}
	mgr.setLeading(nil, false) // as between the election and the loops' start
	got := make(chan *dispatcher.Dispatcher, 1)
	go func() { got <- mgr.servingDispatcher(context.Background()) }()
	select {
	case <-got:
		t.Fatal("the call went on before the dispatcher served")
	case <-time.After(200 * time.Millisecond):
	}
	mgr.setLeading(d, true)
	select {
	case gd := <-got:
		if gd != d {
			t.Fatalf("the held call got dispatcher %p, want the leader's %p", gd, d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the held call did not go on when the dispatcher served")
	}

	for _, m := range c.members {
		if m == l {
			continue
		}
		began := time.Now()
		if fd := m.m.servingDispatcher(context.Background()); fd != nil {
			t.Fatal("a follower returned a dispatcher")
		}
		if took := time.Since(began); took > time.Second {
			t.Fatalf("a follower held a dispatcher call for %v", took)
		}
	}
}
