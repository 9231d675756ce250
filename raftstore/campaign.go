package raftstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
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
	commit, applied, behind := n.behindOnApply()
	if !behind {
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

// behindOnApply reports whether more than campaignMaxLag committed entries
// wait to be applied here, with the commit and applied indexes it read.
func (n *Node) behindOnApply() (commit, applied uint64, behind bool) {
	commit, applied = n.raft.Status().Commit, n.applied.Load()
	return commit, applied, commit > applied+campaignMaxLag
}

// isElectionMessage: a (pre-)vote request or answer.
func isElectionMessage(m raftpb.Message) bool {
	switch m.Type {
	case raftpb.MsgPreVote, raftpb.MsgPreVoteResp, raftpb.MsgVote, raftpb.MsgVoteResp:
		return true
	}
	return false
}

// isVoteRequest: a candidate's or pre-candidate's request for a vote.
func isVoteRequest(m raftpb.Message) bool {
	return m.Type == raftpb.MsgPreVote || m.Type == raftpb.MsgVote
}

// forgetCampaign runs the campaigns of a follower that forgot the
// unreachable leader lead, by rank (campaignRank): the survivor with the
// lowest raft ID among those still connected campaigns at once (within a
// fifth of a stagger), the next one a stagger later, and so on, so that
// two survivors do not both become candidates and split the vote (with
// random waits alone, 2 of 5 kills at 1M tasks split and took a round
// more). Should no leader emerge, it campaigns again, up to
// forgetCampaigns times, again by rank: the lowest after a stagger, the
// next three staggers later, so that after a split the survivors do not
// come back together either.
//
// An election under way is left alone: one in which this member's role or
// term changed, or that it voted in, within a stagger is still gathering
// answers. A candidate waits longer (candidateQuiet staggers): campaigning
// again would start a new term and void the votes on their way, and a
// candidacy that lost needs no retry to end it, raft makes a candidate
// that a majority refused a follower again, and the next round then
// starts from there. On a loaded machine a member answers a vote request
// up to a second and a half late; in one 1M failover a survivor
// re-campaigned 0.3 s into a candidacy its peer had just voted for, and
// the swarm took a third round (3.97 s).
func (n *Node) forgetCampaign(lead uint64, rank int) {
	stagger := campaignStagger(n.cfg)
	jitter := func() time.Duration { return time.Duration(rand.Int64N(int64(stagger/5) + 1)) }
	for i := range forgetCampaigns {
		wait := jitter() + time.Duration(rank)*stagger
		if i > 0 {
			wait = stagger + jitter() + time.Duration(2*rank)*stagger
		}
		for {
			select {
			case <-n.cfg.Clock.After(wait):
			case <-n.done:
				return
			}
			if n.Leader() != 0 || n.forgotten.Load() != lead {
				return
			}
			quiet := stagger
			if raft.StateType(n.raftState.Load()) == raft.StateCandidate {
				quiet = candidateQuiet * stagger
			}
			since := n.cfg.Clock.Since(time.Unix(0, n.electionAt.Load()))
			if since >= quiet {
				break
			}
			wait = quiet - since + jitter()
		}
		n.campaignedAt.Store(n.cfg.Clock.Now().UnixNano())
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = n.raft.Campaign(cctx)
		cancel()
	}
}

// candidateQuiet is how many staggers a candidate's election must stand
// still before forgetCampaign starts another: 2 s at the default tick,
// still less than raft's own randomized timeout (3-6 s), for a candidacy
// whose requests or answers were lost.
const candidateQuiet = 4

// ignoreRivalPreVote tells Step to drop a pre-vote request from a member
// with a higher raft ID while this member is a pre-candidate of its own
// forget campaign, begun less than an election timeout ago. Two survivors
// that campaign together (each busy, so that neither heard of the other's
// campaign before starting its own) would otherwise grant each other's
// pre-votes, both stand in the next term, and split the vote; with this
// rule the higher one grants the lower one's request and the lower one is
// elected in one round. The rule ranks members that could both win, and
// yields where this member cannot:
//   - to a rival whose log is ahead (rivalLogAhead), which refuses this
//     member's requests; a refusal ends a pre-candidacy, but the forget
//     campaign starts another within a stagger, and in a 1M failover
//     (session 25) the lower survivor, three entries short, kept
//     ignoring the other's pre-votes that way for 6.7 s;
//   - while this member's own requests are held back (holdBackCampaign:
//     too far behind on apply): it is a pre-candidate that asks nobody; in
//     another 1M failover a restarted member 123 entries behind ignored the
//     caught-up survivor's pre-votes for 5 s.
//
// In any case the rule ends with the election timeout.
func (n *Node) ignoreRivalPreVote(m raftpb.Message) bool {
	if m.Type != raftpb.MsgPreVote || m.From <= n.raftID {
		return false
	}
	if raft.StateType(n.raftState.Load()) != raft.StatePreCandidate {
		return false
	}
	at := n.campaignedAt.Load()
	if at == 0 || n.cfg.Clock.Since(time.Unix(0, at)) >= time.Duration(n.cfg.ElectionTick)*n.cfg.Tick {
		return false
	}
	if _, _, behind := n.behindOnApply(); behind || n.rivalLogAhead(m) {
		return false
	}
	n.rivalPreVotesIgnored.Add(1)
	n.log.Info("ignoring a pre-vote request from a higher member while this member's own campaign is under way (the higher one is asked to vote for this one; two campaigns at once would split the vote)",
		"from", fmt.Sprintf("%x", m.From), "term", m.Term)
	return true
}

// rivalLogAhead reports whether a vote request's log (its last term and
// index) is more up to date than this member's persisted log: the rival
// then refuses this member's requests, so this member cannot be elected
// while the rival stands, and ignoring the rival only delays the one that
// can. In a 1M failover (session 25) the lower survivor, three entries
// short, was refused and ignored the other's pre-votes for 6.7 s while
// its forget campaign made it a pre-candidate again every half second.
// An unreadable log counts as behind.
func (n *Node) rivalLogAhead(m raftpb.Message) bool {
	last, err := n.storage.LastIndex()
	if err != nil {
		return true
	}
	term, err := n.storage.Term(last)
	if err != nil {
		return true
	}
	return m.LogTerm > term || (m.LogTerm == term && m.Index > last)
}

// noteElection records the moves of this member in an election, from a
// Ready: its raft role (soft state), its term or vote (hard state), and
// the votes and pre-votes it grants (its outgoing messages). Ready loop
// only (prevHard is its own).
func (n *Node) noteElection(rd raft.Ready) {
	moved := false
	if rd.SoftState != nil {
		if st := uint32(rd.SoftState.RaftState); st != n.raftState.Load() {
			n.raftState.Store(st)
			moved = true
		}
	}
	if hs := rd.HardState; !raft.IsEmptyHardState(hs) && (hs.Term != n.prevHard.Term || hs.Vote != n.prevHard.Vote) {
		n.prevHard = hs
		moved = true
	}
	// A leader grants no votes, and its Readies carry every append: the
	// scan is for the others only.
	for i := 0; !moved && raft.StateType(n.raftState.Load()) != raft.StateLeader && i < len(rd.Messages); i++ {
		m := &rd.Messages[i]
		moved = (m.Type == raftpb.MsgPreVoteResp || m.Type == raftpb.MsgVoteResp) && !m.Reject
	}
	if moved {
		n.electionAt.Store(n.cfg.Clock.Now().UnixNano())
	}
}

// noteRivalCandidacy counts a vote request (not a pre-vote) from another
// member as a move in an election the moment it arrives: a rival that
// asks for votes has won its pre-vote round and may be elected within a
// round trip, so forgetCampaign holds this member's own campaign for a
// stagger. noteElection alone notes the vote this member grants it only
// when the Ready loop gets to it, and a starved Ready loop gets to it late:
// in a 1M failover (session 24) a survivor voted for the other, its forget
// campaign fired in the same millisecond, still seeing no election, and
// stood in the next term; it deposed the other a moment after its election
// and, its log now behind, could not win itself: 5.5 s without a leader
// instead of 1.
func (n *Node) noteRivalCandidacy(m raftpb.Message) {
	if m.Type == raftpb.MsgVote && m.From != n.raftID {
		n.electionAt.Store(n.cfg.Clock.Now().UnixNano())
	}
}

// votersAlive counts the members that granted this member their vote as
// active for the first CheckQuorum of its leadership. Raft forgets every
// follower's activity when it becomes leader and steps down one election
// timeout later unless a majority has answered it since; a follower that
// had to append a backlog first, on a machine starved of CPU, answered
// too late: in a 1M failover (session 25) a new leader stepped down 3.1 s
// after its election though both members were up, and the next election
// took 9 s more. A vote is a message from the follower in this term, so
// counting it is what raft's activity flag means; it buys the follower one
// more election timeout, after which it must have answered. Each granted
// vote response is followed by a heartbeat answer (no context: it marks
// activity only, as peerAlive's) from every voter of the term so far:
// raft steps messages in order, so the answers that follow the vote that
// elects this member find it leader, and a candidate ignores them.
// CheckQuorum only decides when a leader cut off from its quorum gives up
// (shoal serves no reads on a lease); a leader that is cut off still
// steps down, one election timeout later.
func (n *Node) votersAlive(ctx context.Context, m raftpb.Message) {
	if m.Type != raftpb.MsgVoteResp || m.Reject || m.From == n.raftID {
		return
	}
	n.votesMu.Lock()
	if n.votesTerm != m.Term {
		n.votesTerm, n.voters = m.Term, n.voters[:0]
	}
	if !slices.Contains(n.voters, m.From) {
		n.voters = append(n.voters, m.From)
	}
	voters := slices.Clone(n.voters)
	n.votesMu.Unlock()
	for _, v := range voters {
		_ = n.raft.Step(ctx, raftpb.Message{Type: raftpb.MsgHeartbeatResp, From: v, To: n.raftID, Term: m.Term})
	}
}

// CampaignIfAlone makes this member campaign at once when it is the
// cluster's only voter, instead of after an election timeout (3 to 6 s at
// the defaults): no other member could answer or be disrupted, and a
// one-manager swarm, the commonest, restarted would otherwise serve
// nothing (not even its own agent's session) for that long. It first
// waits until what was committed when raft started is applied, and
// advanced in raft (which refuses a campaign while a committed
// membership change is unapplied), so the membership it checks is the
// one raft votes with. It reports whether it campaigned.
func (n *Node) CampaignIfAlone(ctx context.Context) (bool, error) {
	select {
	case <-n.started:
	case <-ctx.Done():
		return false, n.ctxError(ctx, ctx.Err())
	}
	want := n.startCommit.Load()
	if err := n.WaitApplied(ctx, want); err != nil {
		return false, err
	}
	if err := n.waitRaftApplied(ctx, want); err != nil {
		return false, err
	}
	n.mu.Lock()
	alone := soleVoter(n.confState, n.raftID)
	n.mu.Unlock()
	if !alone {
		return false, nil
	}
	return true, n.raft.Campaign(ctx)
}

// soleVoter tells whether id is the only voter of cs.
func soleVoter(cs raftpb.ConfState, id uint64) bool {
	return len(cs.Voters) == 1 && cs.Voters[0] == id && len(cs.VotersOutgoing) == 0
}
