package raftstore

import (
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// campaignMaxLag is the committed entries a member may still have to apply
// and yet campaign. A member further behind would, once elected, serve
// nothing until it has applied them: its first write (the new leader's
// barrier) waits behind them. At 1,000,000 tasks a manager restarted from
// its files replays the log since its snapshot at about 15 entries a
// second while 10,000 agents reconnect, and one that won an election in
// that state left the swarm without a working leader for 35 s; a member
// that has caught up, or the old leader once its stall ends, does better.
const campaignMaxLag = 100

// holdBackCampaign drops this member's own vote requests (pre-vote and
// vote) from msgs while more than campaignMaxLag committed entries wait
// to be applied here. Raft then stays a pre-candidate and tries again at
// its next election timeout; it still grants its vote to others, so a
// member that has caught up is elected meanwhile. If the member behind
// holds the longest log, no other can win, and the election waits until
// it is within the limit: it would have served nothing before that anyway
// (its apply goes on without a leader, up to the commit index it knows).
// Called from the Ready loop with a follower's messages.
func (n *Node) holdBackCampaign(msgs []raftpb.Message) []raftpb.Message {
	asks := false
	for _, m := range msgs {
		if isVoteRequest(m) {
			asks = true
			break
		}
	}
	if !asks {
		return msgs
	}
	commit, applied := n.raft.Status().Commit, n.applied.Load()
	if commit <= applied+campaignMaxLag {
		return msgs
	}
	if now := n.cfg.Clock.Now(); now.Sub(time.Unix(0, n.heldBackLogged.Load())) >= time.Duration(n.cfg.ElectionTick)*n.cfg.Tick {
		n.heldBackLogged.Store(now.UnixNano())
		n.log.Info("not campaigning while behind: a leader must apply every committed entry before it serves, so this member waits until it is within the limit, and votes for a member that has caught up meanwhile",
			"committed", commit, "applied", applied, "limit", campaignMaxLag)
	}
	n.campaignsHeldBack.Add(1)
	out := msgs[:0:0]
	for _, m := range msgs {
		if !isVoteRequest(m) {
			out = append(out, m)
		}
	}
	return out
}

// isVoteRequest: a candidate's or pre-candidate's request for a vote.
func isVoteRequest(m raftpb.Message) bool {
	return m.Type == raftpb.MsgPreVote || m.Type == raftpb.MsgVote
}
