package raftstore

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/raft/v3"
)

// logCommitStall logs, at most once per election timeout, where
// replication stands when a proposal timed out waiting to commit: on the
// leader, raft's view of each follower (replicationStatus). A 1M create
// once committed nothing for 80 s with every manager reachable, and the
// log could not tell which follower held the writes back, or why.
func (n *Node) logCommitStall() {
	now := n.cfg.Clock.Now()
	last := n.stallLogged.Load()
	if now.Sub(time.Unix(0, last)) < time.Duration(n.cfg.ElectionTick)*n.cfg.Tick || !n.stallLogged.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	n.log.Warn("a write timed out waiting to commit", "quorum", n.QuorumStatus(), "replication", n.replicationStatus())
}

// replicationStatus describes replication as this member sees it: on the
// leader, the commit index and, per follower (by raft ID), the index it
// has matched, the next one to send, raft's state of its flow (probe,
// replicate, snapshot), the appends in flight and whether the flow is
// paused; elsewhere, the commit and applied indexes and the leader.
func (n *Node) replicationStatus() string {
	st := n.raft.Status()
	if st.RaftState != raft.StateLeader {
		return fmt.Sprintf("commit %d, applied %d, leader %x", st.Commit, n.applied.Load(), st.Lead)
	}
	ids := make([]uint64, 0, len(st.Progress))
	for id := range st.Progress {
		if id != st.ID {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	parts := []string{fmt.Sprintf("commit %d, last %d", st.Commit, st.Progress[st.ID].Match)}
	for _, id := range ids {
		pr := st.Progress[id]
		inflight := 0
		if pr.Inflights != nil {
			inflight = pr.Inflights.Count()
		}
		parts = append(parts, fmt.Sprintf("%x: match %d next %d %s inflight %d paused %v active %v",
			id, pr.Match, pr.Next, pr.State, inflight, pr.IsPaused(), pr.RecentActive))
	}
	return strings.Join(parts, "; ")
}
