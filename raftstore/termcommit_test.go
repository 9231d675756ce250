package raftstore

import (
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// TermCommitted turns true once the commit index reaches an entry of the
// current term (the new leader's first), not before, and tells the
// leadership's subscribers when it does.
func TestTermCommittedOnceAnEntryOfTheTermCommits(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "raft.db"))
	ents := []raftpb.Entry{{Index: 1, Term: 1}, {Index: 2, Term: 1}, {Index: 3, Term: 2}}
	if err := s.Save(raftpb.HardState{Term: 2, Commit: 1}, ents, raftpb.Snapshot{}, true); err != nil {
		t.Fatal(err)
	}
	n := &Node{storage: s, leaderSubs: map[chan struct{}]struct{}{}}
	sub, cancel := n.SubscribeLeadership()
	defer cancel()
	n.lead = 7

	n.noteHardState(raftpb.HardState{Term: 2, Commit: 2}) // the old term's entries
	if n.TermCommitted() {
		t.Fatal("TermCommitted with only entries of term 1 committed in term 2")
	}
	select {
	case <-sub:
		t.Fatal("subscribers told of a commit in an older term")
	default:
	}
	n.noteHardState(raftpb.HardState{Term: 2, Commit: 3})
	if !n.TermCommitted() {
		t.Fatal("not TermCommitted with the term's first entry committed")
	}
	select {
	case <-sub:
	default:
		t.Fatal("subscribers were not told that the term's first entry committed")
	}
	n.noteHardState(raftpb.HardState{Term: 3, Vote: 7, Commit: 3}) // an election
	if n.TermCommitted() {
		t.Fatal("TermCommitted in a new term before any of its entries committed")
	}
	n.lead = 0
	n.committedTerm = 3
	if n.TermCommitted() {
		t.Fatal("TermCommitted without a known leader")
	}
}

// In a running cluster every member's TermCommitted is true once a leader
// has written, and again after a leader change (the steady state never
// holds calls at a follower: manager's election hold).
func TestEveryMemberSeesTheNewLeadersTermCommitted(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	old := c.leader()
	if err := c.write("a"); err != nil {
		t.Fatal(err)
	}
	committed := func() bool {
		for _, m := range c.running() {
			if !m.node.TermCommitted() {
				return false
			}
		}
		return true
	}
	c.eventually(10*time.Second, "every member to see the leader's term committed", committed)
	term := old.node.Term()
	c.stop(old)
	l := c.leader()
	c.eventually(10*time.Second, "the survivors to see the new leader's term committed", func() bool {
		return committed() && l.node.Term() > term
	})
}
