package raftstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Transport carries raft messages between members. Send must not block: a
// message that cannot be queued is dropped (raft retransmits) and the peer
// reported unreachable through the Handler.
type Transport interface {
	// SetHandler names where received messages and delivery reports go.
	// Called once, before any message flows.
	SetHandler(h Handler)
	Send(msgs []raftpb.Message)
	AddPeer(id uint64, addr string)
	RemovePeer(id uint64)
	// Reachable reports whether the peer answered recently.
	Reachable(id uint64) bool
	Close()
}

// Handler is what a Transport delivers to: the Node.
type Handler interface {
	Step(ctx context.Context, m raftpb.Message) error
	ReportUnreachable(id uint64)
	ReportSnapshot(id uint64, status raft.SnapshotStatus)
	// Accept tells whether a message claiming to come from raft ID `from`
	// may be processed when the sender authenticated as node `nodeID`.
	Accept(from uint64, nodeID string) bool
}

// Step delivers a received message to raft.
func (n *Node) Step(ctx context.Context, m raftpb.Message) error {
	select {
	case <-n.started:
	default:
		return fmt.Errorf("raft member not started")
	}
	if n.IsRemoved(m.From) {
		return fmt.Errorf("message from removed member %x refused", m.From)
	}
	if df := n.fault.Load(); df != nil {
		return n.faultStep(df, m) // the transport tells the sender
	}
	if n.deaf.Load() {
		return nil // tests only
	}
	if d := n.electionStepDelay.Load(); d > 0 && isElectionMessage(m) {
		// Tests only: a busy member, which steps each message late but
		// all of them (a loaded Ready loop takes its queue at once).
		time.AfterFunc(time.Duration(d), func() { _ = n.stepElection(context.Background(), m) })
		return nil
	}
	return n.stepElection(ctx, m)
}

// peerAlive tells a leader's raft that a follower is there, from its
// transport's ping (a follower's transport pings when it has sent nothing
// for a second): raft counts a follower active for CheckQuorum only when
// one of its raft messages arrives, and a follower whose raft loop is
// starved of CPU for the election timeout (3 s) sends none, so its leader
// stepped down though every member was up, which starts an election on
// machines that are already too busy: at 1,000,000 tasks, while a
// restarted manager caught up (its snapshot read keeps it silent for
// tens of seconds, leaving the other follower as the leader's only
// quorum), leaders stepped down again and again, once three seconds after
// their election (session 24). The ping is stepped as a heartbeat answer
// of the leader's term with no context: it marks the follower active and
// nothing else (a read barrier's confirmation needs a real answer carrying
// its context; commits need real acknowledgements). A leader cut off from
// its followers still steps down: their pings do not reach it either.
func (n *Node) peerAlive(ctx context.Context, from uint64) {
	select {
	case <-n.started:
	default:
		return
	}
	if n.fault.Load() != nil || !n.IsLeader() || n.IsRemoved(from) {
		return
	}
	_ = n.raft.Step(ctx, raftpb.Message{Type: raftpb.MsgHeartbeatResp, From: from, To: n.raftID, Term: n.Term()})
}

// stepElection is the end of Step: the election rules, then raft.
func (n *Node) stepElection(ctx context.Context, m raftpb.Message) error {
	if n.ignoreRivalPreVote(m) {
		return nil
	}
	n.forgetOnVoteRequest(m)
	n.noteRivalCandidacy(m)
	if err := n.raft.Step(ctx, m); err != nil {
		return err
	}
	n.votersAlive(ctx, m)
	return nil
}

// ReportUnreachable tells raft a peer could not be reached.
func (n *Node) ReportUnreachable(id uint64) {
	select {
	case <-n.started:
		if n.fault.Load() != nil {
			return // raft is stopped
		}
		n.raft.ReportUnreachable(id)
		n.maybeForgetLeader()
	default:
	}
}

// maybeForgetLeader makes a follower forget a leader that is silent for
// three heartbeats while its connection is broken (its process died, or the
// link did). Followers refuse to vote while they still trust a leader
// (CheckQuorum), so a dead leader would otherwise cost up to two election
// timeouts; leaderless followers vote at once and the first candidate wins.
// Called from the Ready loop on every tick.
func (n *Node) maybeForgetLeader() {
	if n.noForgetTicks.Load() {
		return
	}
	lead, ok := n.goneLeader(time.Duration(3*n.cfg.HeartbeatTick) * n.cfg.Tick)
	if !ok || !n.forgetLeader(lead, 0, "") {
		return
	}
	// Campaign at once instead of after a whole election timeout; PreVote
	// keeps a campaign from disturbing a leader that is alive after all.
	//
	// A campaign that reaches the other survivor before it has forgotten
	// the leader too would be refused (it still trusts the leader), but
	// forgetOnVoteRequest makes it forget a leader whose connection is down
	// too; should a campaign fail all the same, try again after a new
	// stagger while no leader has emerged, a few times, rather than wait a
	// whole election timeout (3-6 s). The campaigns go by rank
	// (forgetCampaign).
	rank := n.campaignRank(lead)
	go n.forgetCampaign(lead, rank)
}

// campaignRank is how many voters other than this member and the
// forgotten leader, with a connection that is not known to be down, have a
// lower raft ID than this member.
func (n *Node) campaignRank(lead uint64) int {
	if n.rankZero.Load() {
		return 0
	}
	n.mu.Lock()
	voters := append([]uint64(nil), n.confState.Voters...)
	n.mu.Unlock()
	health, _ := n.transport.(peerHealth)
	rank := 0
	for _, id := range voters {
		if id == n.raftID || id == lead || id > n.raftID {
			continue
		}
		if health != nil && health.ConnectionDown(id) {
			continue
		}
		rank++
	}
	return rank
}

// forgetOnVoteRequest runs before a peer's (pre-)vote request is stepped:
// a follower whose own connection to its leader is down too, and that has
// not heard from it for a heartbeat, forgets it now instead of at its next
// tick or two, so that the request is not ignored for the leader's lease.
// Without it, the first campaign of the survivor that noticed a dead leader
// first was ignored by the other survivor, which had not yet noticed (they
// notice within a tick of each other), and the next campaign came a stagger
// later: in the scale harness, 1.46 s from forgetting to a new leader
// against 0.3-0.6 s. It starts no campaign of its own: the asker's is
// under way.
//
// A follower that has heard nothing from its leader for
// voteSilenceBeats heartbeats forgets it too, whatever its own connection
// says, when the asker saw its own connection to that leader break (its
// vote requests say so: markVoteRequests): a busy member notices a broken
// connection late (in a 1M failover one noticed 1.36 s after the other,
// which meanwhile had its pre-votes refused three times, and the new
// leader came 3.6 s after the kill). Silence alone is not enough: under
// CPU starvation a live leader goes quiet for seconds, and a member
// deposed by CheckQuorum campaigns after its election timeout; granting
// it the vote deposed the new leader too (a 1M create, session 21).
func (n *Node) forgetOnVoteRequest(m raftpb.Message) {
	if !isVoteRequest(m) {
		return
	}
	beat := time.Duration(n.cfg.HeartbeatTick) * n.cfg.Tick
	lead, ok := n.goneLeader(beat)
	why := "its connection to the leader is down too"
	if !ok {
		lead, ok = n.silentLeader(voteSilenceBeats * beat)
		why = "nothing came from the leader for " + (voteSilenceBeats * beat).String() + " and the asker's connection to it broke"
		if ok && !sawLeaderGone(m, lead) {
			ok = false
		}
	}
	if ok && lead != m.From {
		n.forgetLeader(lead, m.From, why)
	}
}

// leaderGonePrefix starts the Context of a vote request whose sender
// forgot its leader after its connection to it broke; the leader's raft
// ID follows (8 bytes, big-endian). Raft itself gives a vote request's
// Context a meaning only for leadership transfers ("CampaignTransfer"),
// which are never marked.
const leaderGonePrefix = "shoal-leader-gone:"

// markVoteRequests marks this member's vote requests (pre-vote and vote)
// with the leader it forgot, when its connection to that leader is down:
// the receivers' silence rule (forgetOnVoteRequest) needs that evidence.
func (n *Node) markVoteRequests(msgs []raftpb.Message) {
	gone := n.forgotten.Load()
	if gone == 0 {
		return
	}
	t, ok := n.transport.(peerHealth)
	if !ok || !t.ConnectionDown(gone) {
		return
	}
	for i := range msgs {
		if isVoteRequest(msgs[i]) && len(msgs[i].Context) == 0 {
			msgs[i].Context = binary.BigEndian.AppendUint64([]byte(leaderGonePrefix), gone)
		}
	}
}

// sawLeaderGone tells whether vote request m says its sender saw its
// connection to lead break.
func sawLeaderGone(m raftpb.Message, lead uint64) bool {
	rest, ok := bytes.CutPrefix(m.Context, []byte(leaderGonePrefix))
	return ok && len(rest) == 8 && binary.BigEndian.Uint64(rest) == lead
}

// voteSilenceBeats is how many heartbeats' silence of the leader lets a
// vote request make a follower forget it although its connection looks up
// (1 s at the default 100 ms heartbeat; the election timeout is 3 s).
const voteSilenceBeats = 10

// silentLeader returns the leader this follower follows when nothing came
// from it for at least silence (and something came before).
func (n *Node) silentLeader(silence time.Duration) (uint64, bool) {
	lead, t, ok := n.followedLeader()
	if !ok {
		return 0, false
	}
	if n.leaderQuiet.Load() {
		return lead, true
	}
	heard := t.LastHeard(lead)
	if heard.IsZero() || time.Since(heard) < silence {
		return 0, false
	}
	return lead, true
}

// followedLeader returns the leader this follower follows and has not
// forgotten, and what the transport tells of its peers; false when there
// is none, this member leads, or the transport tells nothing.
func (n *Node) followedLeader() (uint64, peerHealth, bool) {
	lead := n.Leader()
	if lead == 0 || n.IsLeader() || n.forgotten.Load() == lead {
		return 0, nil, false
	}
	t, ok := n.transport.(peerHealth)
	return lead, t, ok
}

// peerHealth is what a transport may tell about its peers' connections
// (GRPCTransport does; a transport that does not leaves leaders to raft's
// election timeout).
type peerHealth interface {
	LastHeard(uint64) time.Time
	ConnectionDown(uint64) bool
}

// goneLeader returns the leader this follower follows when its connection
// to it is broken and nothing came from it for at least silence.
func (n *Node) goneLeader(silence time.Duration) (uint64, bool) {
	lead, t, ok := n.followedLeader()
	if !ok || !t.ConnectionDown(lead) || n.connBlind.Load() || time.Since(t.LastHeard(lead)) < silence {
		return 0, false
	}
	return lead, true
}

// forgetLeader makes raft forget lead, once per leader however many
// callers race to it; asker is the peer whose vote request prompted it (0
// for the tick), why what made the vote request do it (logged). It reports
// whether this call forgot it.
func (n *Node) forgetLeader(lead, asker uint64, why string) bool {
	prev := n.forgotten.Load()
	if prev == lead || !n.forgotten.CompareAndSwap(prev, lead) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := n.raft.ForgetLeader(ctx); err != nil {
		return false
	}
	if asker == 0 {
		n.log.Info("leader unreachable: forgetting it so a new one can be elected at once", "leader", fmt.Sprintf("%x", lead))
	} else {
		n.log.Info("leader unreachable: forgetting it to answer a member that asks for a vote", "leader", fmt.Sprintf("%x", lead), "asker", fmt.Sprintf("%x", asker), "why", why)
	}
	return true
}

// forgetCampaigns bounds the campaigns of a follower that forgot an
// unreachable leader before it leaves elections to raft's timeout.
const forgetCampaigns = 5

// campaignStagger is the step between the campaigns of survivors of
// successive ranks after an unreachable leader is forgotten, and between
// one survivor's retries: half an election timeout, but no more than half
// a second (five ticks of 100 ms), so that a long election timeout does not
// slow the replacement of a killed leader.
func campaignStagger(cfg Config) time.Duration {
	return time.Duration(min(cfg.ElectionTick, 10)) * cfg.Tick / 2
}

// ReportSnapshot tells raft how sending a snapshot went.
func (n *Node) ReportSnapshot(id uint64, status raft.SnapshotStatus) {
	select {
	case <-n.started:
		if n.fault.Load() == nil {
			n.raft.ReportSnapshot(id, status)
		}
	default:
	}
}

// Accept binds a message's raft sender to the authenticated node: a member
// may only speak for its own raft ID, and removed members not at all. A
// sender not yet known locally (this member lags behind the membership
// change that added it) is accepted only if no known member claims the ID.
func (n *Node) Accept(from uint64, nodeID string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.removed[from] {
		return false
	}
	if m := n.members[from]; m != nil {
		return m.NodeId == nodeID
	}
	for _, m := range n.members {
		if m.NodeId == nodeID {
			return false // that node has another raft ID
		}
	}
	return true
}

// raftLogger adapts slog to raft's logger. raft's chatty info lines go to
// debug, except those of elections (campaigns, votes cast, refused or
// ignored, terms changing): a few lines per member per election, and the
// only record of why one took a second round.
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)            { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Debugf(f string, v ...any) { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Info(v ...any)             { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Infof(f string, v ...any) {
	if electionLine(f) {
		r.l.Info(fmt.Sprintf(f, v...))
		return
	}
	r.l.Debug(fmt.Sprintf(f, v...))
}

func (r raftLogger) Warning(v ...any)            { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(f string, v ...any) { r.l.Warn(fmt.Sprintf(f, v...)) }
func (r raftLogger) Error(v ...any)              { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(f string, v ...any)   { r.l.Error(fmt.Sprintf(f, v...)) }
func (r raftLogger) Fatal(v ...any)              { r.l.Error(fmt.Sprint(v...)); panic(fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(f string, v ...any)   { r.Fatal(fmt.Sprintf(f, v...)) }
func (r raftLogger) Panic(v ...any)              { panic(fmt.Sprint(v...)) }
func (r raftLogger) Panicf(f string, v ...any)   { panic(fmt.Sprintf(f, v...)) }

// electionWords mark raft's election lines in their format strings.
var electionWords = []string{"became ", "election", "vote", "cast %s", "rejected %s", "ignored %s", "sent %s request", "received %s from", "higher term", "forgetting leader"}

// electionLine tells raft's election lines by their format strings.
func electionLine(format string) bool {
	for _, k := range electionWords {
		if strings.Contains(format, k) {
			return true
		}
	}
	return false
}

// QuorumStatus describes reachability, e.g. "2 of 3 managers reachable".
func (n *Node) QuorumStatus() string {
	reach, total := n.reachable()
	if total > 1 && reach < total/2+1 {
		return fmt.Sprintf("quorum lost: %d of %d managers reachable", reach, total)
	}
	return fmt.Sprintf("%d of %d managers reachable", reach, total)
}

func (n *Node) reachable() (reach, total int) {
	n.mu.Lock()
	ids := make([]uint64, 0, len(n.members))
	for id := range n.members {
		ids = append(ids, id)
	}
	n.mu.Unlock()
	for _, id := range ids {
		if n.peerReachable(id) {
			reach++
		}
	}
	return reach, len(ids)
}

// peerReachable: raft's own record of recent contact on the leader (reset
// every election timeout under CheckQuorum), or the transport's record of a
// recent exchange (which also covers a leader elected a moment ago, before
// raft has heard from anyone).
func (n *Node) peerReachable(id uint64) bool {
	if id == n.raftID {
		return true
	}
	if n.peerDiskFault(id) != "" {
		return false // it does not acknowledge
	}
	if n.IsLeader() {
		if pr, ok := n.raft.Status().Progress[id]; ok && pr.RecentActive {
			return true
		}
	}
	return n.transport.Reachable(id)
}
