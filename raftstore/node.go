package raftstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// Command is the type byte that starts every log entry this package writes.
// A type with cmdIgnoreUnknown set may be skipped by a binary that does not
// know it (for rolling upgrades); any other unknown type stops the node.
type Command byte

// Commands.
const (
	CmdNoop        Command = 1 // a barrier: applies nothing
	CmdTransaction Command = 2 // an api.Transaction for the Store
	// CmdTransactionDeflated is CmdTransaction deflated (compress.go).
	CmdTransactionDeflated Command = 3

	cmdIgnoreUnknown Command = 0x80
)

// entryHeader is the command byte and the proposal's request ID.
const entryHeader = 9

// Errors of the node.
var (
	ErrLostLeadership = errdefs.New(errdefs.ErrUnavailable, "leadership changed while the write was in flight; it may or may not have been applied: read the state and retry")
	ErrRemoved        = errdefs.New(errdefs.ErrFailedPrecondition, "this manager was removed from the cluster")
)

// Node is one raft member: it runs the Ready loop over a DiskStorage and a
// Transport, and an applier that applies committed entries to a Store.
//
// For every Ready the loop queues the committed entries already on disk to
// the applier, sends (leader) or not yet, persists the hard state, entries
// and snapshot in one fsynced transaction, sends (followers), restores a
// snapshot once the applier is idle, queues the rest of the committed
// entries, and Advances (doc.go, "Ready loop contract").
//
// Node is safe for concurrent use once Run has started.
type Node struct {
	cfg       Config
	log       *slog.Logger
	storage   *DiskStorage
	store     *Store
	transport Transport

	raft   *raftHandle // the current raft node (replaced after a disk fault)
	stall  *stallWatch
	raftID uint64
	mode   StartMode
	// bootstrapPeers is the membership a Bootstrap started with.
	bootstrapPeers []raft.Peer
	// started is closed when raft is running and methods may be used.
	started chan struct{}
	done    chan struct{} // closed when Run returns

	reqSeq  atomic.Uint64
	reqBase uint64
	// confSlot holds one token while a membership change made through
	// this node is in flight (lockConfChange).
	confSlot chan struct{}

	mu         sync.Mutex
	waiters    map[uint64]chan error // proposals in flight
	reads      map[uint64]chan uint64
	readBatch  readBatcher   // coalesces LinearizableRead (readindex.go)
	readRounds atomic.Uint64 // ReadIndex rounds sent
	members    map[uint64]*api.RaftMember
	removed    map[uint64]bool
	confState  raftpb.ConfState
	// startCommit is the last entry known committed when raft started
	// (CampaignIfAlone waits until it is applied).
	startCommit atomic.Uint64
	lead        uint64
	term        uint64
	isLeader    bool
	leaderSubs  map[chan struct{}]struct{}
	// leaderChanges counts the leaders this member has seen take over
	// (a new non-zero leader ID), for metrics.
	leaderChanges atomic.Uint64

	applied       atomic.Uint64
	appliedMu     sync.Mutex
	appliedNotify chan struct{} // closed and replaced after every apply

	forgotten atomic.Uint64 // the leader last forgotten by forgetLeader
	// noForgetTicks, set by tests, keeps the tick from forgetting an
	// unreachable leader (a member that has not noticed yet).
	noForgetTicks atomic.Bool
	// connBlind, set by tests, makes this member see its connection to
	// the leader as up whatever it is (a busy member whose transport has
	// not yet noticed the broken connection).
	connBlind atomic.Bool
	// leaderQuiet, set by tests, makes this member count its leader
	// silent whatever came from it (a live leader starved of CPU).
	leaderQuiet atomic.Bool
	// campaignsHeldBack counts the Readies whose vote requests were
	// dropped (holdBackCampaign); heldBackLogged is when that was last
	// logged (unix nanoseconds).
	campaignsHeldBack atomic.Uint64
	heldBackLogged    atomic.Int64
	// stallLogged is when logCommitStall last logged (unix nanoseconds).
	stallLogged atomic.Int64
	// The election bookkeeping of forgetCampaign and ignoreRivalPreVote
	// (campaign.go): raftState is the raft role of the last soft state
	// (raft.StateType); electionAt when this member's part in an election
	// last moved, campaignedAt when forgetCampaign last campaigned (unix
	// nanoseconds, cfg.Clock); prevHard the last hard state, Ready loop
	// only; rivalPreVotesIgnored counts the dropped requests.
	raftState            atomic.Uint32
	electionAt           atomic.Int64
	campaignedAt         atomic.Int64
	prevHard             raftpb.HardState
	rivalPreVotesIgnored atomic.Uint64
	// votersAlive's record of the members that granted this member their
	// vote in votesTerm.
	votesMu   sync.Mutex
	votesTerm uint64
	voters    []uint64
	// Set by tests: rankZero makes campaignRank 0 (survivors that
	// campaign together); electionStepDelay delays the stepping of every
	// received election message (a member busy with writes; nanoseconds).
	rankZero          atomic.Bool
	electionStepDelay atomic.Int64
	// deaf, set by tests, drops every message received from a peer before
	// raft sees it (a member whose raft loop is starved: it hears nothing
	// and says nothing, while its transport still pings).
	deaf atomic.Bool
	// applyHook, set by tests, runs before each entry is applied (a slow
	// applier).
	applyHook    atomic.Pointer[func()]
	snapshotting atomic.Bool
	snapIndex    atomic.Uint64
	snapEvery    atomic.Uint64 // entries between snapshots (SetSnapshotPolicy)
	snapKeep     atomic.Uint64 // entries kept after a snapshot for slow followers
	// logBytes are the bytes of the entries applied since the last
	// snapshot; lastSnapBytes is the size of the last snapshot taken.
	logBytes      atomic.Int64
	lastSnapBytes atomic.Uint64
	// For metrics (Stats): proposals from Propose to applied, snapshots
	// from encoding to saved.
	proposeLatency Histogram
	snapLatency    Histogram
	removedSelf    chan struct{}
	removedOnce    sync.Once

	// Disk faults (node_fault.go). fault is set while the raft log cannot
	// be written; interrupt (under mu) is closed when a fault stops raft;
	// faultLeadTerm (under mu) is the term of the leader heard from while
	// faulted; snapFault carries a fault met while saving a snapshot to the
	// Ready loop; injectFault, set by tests, may fail a write ("save"), a
	// snapshot ("snapshot") or a probe ("probe") before it touches the disk.
	fault         atomic.Pointer[DiskFaultError]
	interrupt     chan struct{}
	faultLeadTerm uint64
	snapFault     chan *DiskFaultError
	injectFault   atomic.Pointer[func(op string) error]

	applier *applier // applies committed entries (apply.go)
	// appends and appended count the Readys that wrote entries and those
	// entries (the batch size, for benchmarks).
	appends, appended atomic.Uint64
}

// New prepares a node over an opened storage. The store receives committed
// transactions; the transport carries raft messages and gets the node as its
// handler.
func New(cfg Config, storage *DiskStorage, store *Store, transport Transport) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	n := &Node{
		cfg:           cfg,
		log:           cfg.Logger.With("component", "raft"),
		storage:       storage,
		store:         store,
		transport:     transport,
		raft:          &raftHandle{},
		stall:         newStallWatch(cfg.Logger.With("component", "raft"), cfg.Tick),
		raftID:        storage.RaftID(),
		started:       make(chan struct{}),
		done:          make(chan struct{}),
		reqBase:       binary.BigEndian.Uint64(b[:]) &^ 0xffffffff,
		waiters:       map[uint64]chan error{},
		reads:         map[uint64]chan uint64{},
		members:       map[uint64]*api.RaftMember{},
		removed:       map[uint64]bool{},
		leaderSubs:    map[chan struct{}]struct{}{},
		appliedNotify: make(chan struct{}),
		removedSelf:   make(chan struct{}),
		interrupt:     make(chan struct{}),
		snapFault:     make(chan *DiskFaultError, 1),
		applier:       newApplier(),
		confSlot:      make(chan struct{}, 1),
	}
	n.SetSnapshotPolicy(0, 0)
	store.SetProposer(n)
	transport.SetHandler(n)
	return n, nil
}

// NewRaftID returns a random raft ID that is never 0.
func NewRaftID() uint64 {
	for {
		var b [8]byte
		_, _ = rand.Read(b[:])
		if id := binary.BigEndian.Uint64(b[:]); id != 0 && id != raft.None {
			return id
		}
	}
}

// StartMode says how Run starts raft.
type StartMode int

const (
	// Restart resumes from the storage (which must not be empty).
	Restart StartMode = iota
	// Bootstrap starts a new single-member cluster (storage must be empty).
	Bootstrap
	// JoinExisting starts an empty member that a leader already added; it
	// learns the log from the leader. The raft ID must have been recorded
	// with DiskStorage.SetRaftID.
	JoinExisting
)

func (n *Node) raftConfig() *raft.Config {
	return &raft.Config{
		ID:                        n.raftID,
		ElectionTick:              n.cfg.ElectionTick,
		HeartbeatTick:             n.cfg.HeartbeatTick,
		Storage:                   n.storage,
		Applied:                   n.snapIndex.Load(),
		MaxSizePerMsg:             n.cfg.MaxSizePerMsg,
		MaxInflightMsgs:           n.cfg.MaxInflightMsgs,
		MaxUncommittedEntriesSize: 64 << 20,
		CheckQuorum:               true,
		PreVote:                   true,
		DisableProposalForwarding: true,
		StepDownOnRemoval:         true,
		Logger:                    raftLogger{n.log},
	}
}

// Run runs the node until ctx ends or the node is removed from the
// cluster. It returns ErrRemoved in the latter case.
func (n *Node) Run(ctx context.Context, mode StartMode) error {
	defer close(n.done)
	if err := n.start(mode); err != nil {
		return err
	}
	go n.runApplier()
	defer n.shutdown()
	// Made before started is closed, so that a fake clock advanced right
	// after the start ticks it (the dispatcher lost its first ticks so).
	ticker := n.cfg.Clock.NewTicker(n.cfg.Tick)
	defer ticker.Stop()
	close(n.started)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-n.removedSelf:
			return ErrRemoved
		case <-ticker.Chan():
			n.stall.tick(n.cfg.Clock.Now())
			n.raft.Tick()
			n.maybeForgetLeader()
		case rd := <-n.raft.Ready():
			if err := n.handleReady(ctx, rd); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				var df *DiskFaultError
				if errors.As(err, &df) {
					if err := n.faulted(ctx, df); err != nil {
						n.log.Error("raft ready loop stopped", "err", err)
						return err
					}
					continue
				}
				n.log.Error("raft ready loop stopped", "err", err)
				return err
			}
		case df := <-n.snapFault:
			if err := n.faulted(ctx, df); err != nil {
				n.log.Error("raft ready loop stopped", "err", err)
				return err
			}
		case <-n.applier.exited:
			err := n.applierError()
			n.log.Error("raft ready loop stopped", "err", err)
			return err
		}
	}
}

func (n *Node) start(mode StartMode) error {
	n.mode = mode
	removeProbe(n.storage.Path())
	snap, err := n.storage.Snapshot()
	if err != nil {
		return err
	}
	if !raft.IsEmptySnap(snap) {
		if err := n.restoreSnapshot(snap); err != nil {
			return err
		}
	}
	switch mode {
	case Bootstrap:
		if !n.storage.IsEmpty() {
			return errdefs.FailedPrecondition("cannot bootstrap a new cluster over an existing raft log at %s", n.storage.Path())
		}
		n.raftID = NewRaftID()
		if err := n.storage.SetRaftID(n.raftID); err != nil {
			return err
		}
		self := &api.RaftMember{RaftId: n.raftID, NodeId: n.cfg.NodeID, Addr: n.cfg.Addr}
		ctx, err := proto.Marshal(self)
		if err != nil {
			return err
		}
		n.bootstrapPeers = []raft.Peer{{ID: n.raftID, Context: ctx}}
		n.startCommit.Store(uint64(len(n.bootstrapPeers)))
		n.raft.set(raft.StartNode(n.raftConfig(), n.bootstrapPeers))
	case JoinExisting, Restart:
		if id := n.storage.RaftID(); id != n.raftID {
			n.raftID = id // recorded in the log after New, not through SetRaftID
		}
		if n.raftID == 0 {
			return errdefs.FailedPrecondition("raft log %s has no member ID: the node never joined a cluster", n.storage.Path())
		}
		if mode == Restart && n.storage.IsEmpty() {
			return errdefs.FailedPrecondition("raft log %s is empty: nothing to restart from", n.storage.Path())
		}
		hs, _, err := n.storage.InitialState()
		if err != nil {
			return err
		}
		n.startCommit.Store(hs.Commit)
		n.raft.set(raft.RestartNode(n.raftConfig()))
	}
	n.log.Info("raft member started", "raft_id", fmt.Sprintf("%x", n.raftID), "mode", mode)
	return nil
}

// faulted rides out a disk fault once the applier has applied what it
// holds (entries already durable here, applied while raft still runs).
func (n *Node) faulted(ctx context.Context, df *DiskFaultError) error {
	if err := n.drainApplier(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	return n.rideOutFault(ctx, df)
}

func (n *Node) shutdown() {
	n.stopApplier()
	n.raft.Stop()
	n.transport.Close()
	n.mu.Lock()
	for id, ch := range n.waiters {
		ch <- errdefs.ErrStopped
		delete(n.waiters, id)
	}
	n.isLeader = false
	n.lead = 0
	n.notifyLeadershipLocked()
	n.mu.Unlock()
}

func (n *Node) handleReady(ctx context.Context, rd raft.Ready) error {
	// A leader may replicate to followers while it writes its own disk
	// (raft thesis 10.2.1): its entries only count once persisted, which
	// raft tracks. Everyone else must persist before answering.
	// Leadership first: a new leader's first messages must not reach
	// another member before this one answers as leader.
	if rd.SoftState != nil {
		n.leadershipChanged(rd.SoftState.Lead, rd.SoftState.RaftState == raft.StateLeader)
	}
	n.noteElection(rd)
	leader := n.IsLeader()
	clock := n.cfg.Clock
	t := readyTimes{start: clock.Now(), entries: len(rd.Entries), committed: len(rd.CommittedEntries)}
	since := func(d *time.Duration, from time.Time) { *d += clock.Since(from) }
	// Committed entries already on this disk are applied while this Ready
	// is written: a commit never waits for the fsync of newer entries.
	durable, rest := n.splitDurable(rd)
	if len(durable) > 0 {
		at := clock.Now()
		if err := n.toApplier(ctx, applyBatch{entries: durable}); err != nil {
			return err
		}
		since(&t.applyQueue, at)
	}
	if leader {
		at := clock.Now()
		n.transport.Send(rd.Messages)
		since(&t.send, at)
	}
	at := clock.Now()
	if err := n.persist(rd); err != nil {
		return err // a *DiskFaultError is ridden out by Run
	}
	since(&t.persist, at)
	if len(rd.Entries) > 0 {
		n.appends.Add(1)
		n.appended.Add(uint64(len(rd.Entries)))
	}
	if !leader {
		at := clock.Now()
		msgs := n.holdBackCampaign(rd.Messages)
		n.markVoteRequests(msgs)
		n.transport.Send(msgs)
		since(&t.send, at)
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		// The store is replaced only once the applier is idle.
		at := clock.Now()
		if err := n.drainApplier(ctx); err != nil {
			return err
		}
		if err := n.restoreSnapshot(rd.Snapshot); err != nil {
			return err
		}
		since(&t.snapshot, at)
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		n.mu.Lock()
		n.term = rd.HardState.Term
		n.mu.Unlock()
	}
	for _, rs := range rd.ReadStates {
		n.readDone(rs) // served by WaitApplied once applied >= its index
	}
	if len(rest) > 0 {
		at := clock.Now()
		if err := n.toApplier(ctx, applyBatch{entries: rest}); err != nil {
			return err
		}
		since(&t.applyQueue, at)
	}
	if hasConfChange(rd.CommittedEntries) {
		// Raft learns the new membership (ApplyConfChange) before it
		// goes on, as when apply ran in this loop.
		if err := n.drainApplier(ctx); err != nil {
			return err
		}
	}
	n.raft.Advance()
	n.stall.ready(clock.Now(), t)
	return nil
}

// apply applies e, or, for a transaction, adds it to run, which applies
// its transactions together when flushed (before any other entry is
// applied, and at the end of the applier's batch).
func (n *Node) apply(e raftpb.Entry, run *txRun) error {
	applied := n.applied.Load()
	if k := len(run.entries); k > 0 {
		applied = run.entries[k-1].Index
	}
	if e.Index <= applied {
		return fmt.Errorf("entry %d delivered again after %d was applied", e.Index, applied)
	}
	if h := n.applyHook.Load(); h != nil {
		(*h)()
	}
	n.logBytes.Add(int64(e.Size()))
	var inflateErr error // a transaction's that does not inflate
	if e.Type == raftpb.EntryNormal && len(e.Data) >= entryHeader {
		if cmd := Command(e.Data[0]); cmd == CmdTransaction || cmd == CmdTransactionDeflated {
			tx, err := transactionPayload(cmd, e.Data[9:])
			inflateErr = err
			if err == nil {
				run.entries = append(run.entries, TxEntry{Index: e.Index, Payload: tx})
				run.ids = append(run.ids, binary.BigEndian.Uint64(e.Data[1:9]))
				if run.bytes += len(tx); run.bytes >= txRunBytes {
					n.flush(run)
				}
				return nil
			}
		}
	}
	n.flush(run)
	defer n.applied.Store(e.Index)
	switch e.Type {
	case raftpb.EntryConfChange:
		var cc raftpb.ConfChange
		if err := cc.Unmarshal(e.Data); err != nil {
			return fmt.Errorf("entry %d: bad conf change: %w", e.Index, err)
		}
		n.applyConfChange(e.Index, cc)
		n.store.MarkApplied(e.Index)
		return nil
	case raftpb.EntryConfChangeV2:
		return fmt.Errorf("entry %d: joint consensus changes are not used by shoal", e.Index)
	}
	if len(e.Data) == 0 { // the empty entry a new leader appends
		n.store.MarkApplied(e.Index)
		return nil
	}
	if len(e.Data) < entryHeader {
		return fmt.Errorf("entry %d: %d bytes is shorter than its header", e.Index, len(e.Data))
	}
	cmd, id := Command(e.Data[0]), binary.BigEndian.Uint64(e.Data[1:9])
	var result error
	switch cmd {
	case CmdNoop:
		n.store.MarkApplied(e.Index)
	case CmdTransaction, CmdTransactionDeflated:
		// Only a transaction that does not inflate comes here. Every
		// replica meets the same bytes: each skips the entry.
		n.store.MarkApplied(e.Index)
		result = errdefs.Internal("raft entry %d does not inflate (%v); it was skipped on every manager and changed nothing", e.Index, inflateErr)
		n.log.Error("a raft entry could not be applied and was skipped", "index", e.Index, "err", result)
	default:
		if cmd&cmdIgnoreUnknown == 0 {
			return fmt.Errorf("entry %d: unknown command %#x (written by a newer shoald?)", e.Index, byte(cmd))
		}
		n.store.MarkApplied(e.Index)
	}
	n.mu.Lock()
	if ch, ok := n.waiters[id]; ok {
		ch <- result
		delete(n.waiters, id)
	}
	n.mu.Unlock()
	return nil
}

// txRun is consecutive committed transactions waiting to be applied
// together (Store.ApplyBatch), with their proposals' IDs.
type txRun struct {
	entries []TxEntry
	ids     []uint64
	bytes   int
}

// txRunBytes bounds a run by its transactions' bytes. Small transactions
// (a service create, a node's status) gain most from sharing a fork; big
// ones (1,000 tasks) write paths of their own, and their proposers would
// only wait longer for their answers, which come when the run is applied.
const txRunBytes = 64 << 10

// flush applies run's transactions, marks them applied and hands each
// proposer its verdict: only once all are published, so that a proposer
// whose write returned reads it.
func (n *Node) flush(run *txRun) {
	if len(run.entries) == 0 {
		return
	}
	errs := n.store.ApplyBatch(run.entries)
	n.applied.Store(run.entries[len(run.entries)-1].Index)
	for i, err := range errs {
		if errors.Is(err, errdefs.ErrInternal) {
			n.log.Error("a raft entry could not be applied and was skipped", "index", run.entries[i].Index, "err", err)
		}
	}
	n.mu.Lock()
	for i, id := range run.ids {
		if ch, ok := n.waiters[id]; ok {
			ch <- errs[i]
			delete(n.waiters, id)
		}
	}
	n.mu.Unlock()
	clear(run.entries) // let the payloads go
	run.entries, run.ids, run.bytes = run.entries[:0], run.ids[:0], 0
}

// accepting fails when the node has not started or its disk is faulted.
func (n *Node) accepting() error {
	select {
	case <-n.started:
	default:
		return errdefs.ErrStopped
	}
	if df := n.fault.Load(); df != nil {
		return df
	}
	return nil
}

// Propose replicates a command and waits until it is applied locally,
// returning the store's verdict. Only the leader accepts proposals; others
// fail at once with a "no leader"/"not the leader" error.
func (n *Node) Propose(ctx context.Context, cmd Command, payload []byte) error {
	if err := n.accepting(); err != nil {
		return err
	}
	n.mu.Lock()
	leader := n.isLeader
	n.mu.Unlock()
	if !leader {
		return n.unavailable()
	}
	id := n.reqBase | (n.reqSeq.Add(1) & 0xffffffff)
	data := make([]byte, entryHeader+len(payload))
	data[0] = byte(cmd)
	binary.BigEndian.PutUint64(data[1:9], id)
	copy(data[9:], payload)
	ch, forget := n.register(id)
	start := n.cfg.Clock.Now()
	if err := n.raft.Propose(ctx, data); err != nil {
		forget()
		if errors.Is(err, raft.ErrProposalDropped) {
			return n.unavailable()
		}
		if errors.Is(err, raft.ErrStopped) {
			return n.stoppedWhileProposing()
		}
		return n.ctxError(ctx, err)
	}
	err := n.await(ctx, ch, forget)
	if err == nil {
		n.proposeLatency.Observe(n.cfg.Clock.Since(start))
	}
	return err
}

// register makes a waiter for the outcome of proposal id; forget drops it.
func (n *Node) register(id uint64) (chan error, func()) {
	ch := make(chan error, 1)
	n.mu.Lock()
	n.waiters[id] = ch
	n.mu.Unlock()
	return ch, func() {
		n.mu.Lock()
		delete(n.waiters, id)
		n.mu.Unlock()
	}
}

// await waits for a registered proposal's outcome, its deadline or the end
// of the node. A disk fault fails every registered proposal with itself.
func (n *Node) await(ctx context.Context, ch chan error, forget func()) error {
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		forget()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			n.logCommitStall()
		}
		return n.ctxError(ctx, ctx.Err())
	case <-n.done:
		return errdefs.ErrStopped
	}
}

// ctxError explains a context error with the cluster's state.
func (n *Node) ctxError(ctx context.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errdefs.Newf(errdefs.ErrDeadlineExceeded, "timed out waiting for the write to commit (%s)", n.QuorumStatus())
	}
	if errors.Is(err, context.Canceled) {
		return errdefs.Newf(errdefs.ErrCanceled, "canceled")
	}
	return err
}

// LeaderError explains why this member cannot serve a call meant for the
// leader: it names the leader, or says there is none and why.
func (n *Node) LeaderError() error { return n.unavailable() }

// unavailable explains why this member cannot take a write.
func (n *Node) unavailable() error {
	if df := n.fault.Load(); df != nil {
		return df
	}
	n.mu.Lock()
	lead := n.lead
	m := n.members[lead]
	n.mu.Unlock()
	if lead != raft.None && m != nil {
		return &NotLeaderError{LeaderNodeID: m.NodeId, LeaderAddr: m.Addr}
	}
	reach, total := n.reachable()
	if total > 1 && reach < total/2+1 {
		return errdefs.Newf(errdefs.ErrUnavailable, "the swarm does not have a leader: quorum lost (%d of %d managers reachable). Bring back managers until a majority (%d) is reachable", reach, total, total/2+1)
	}
	return errdefs.ErrNoLeader
}

// NotLeaderError is returned by writes on a follower; it names the leader
// so that the caller can forward.
type NotLeaderError struct {
	LeaderNodeID string
	LeaderAddr   string
}

func (e *NotLeaderError) Error() string {
	return fmt.Sprintf("this manager is not the leader (the leader is %s at %s)", e.LeaderNodeID, e.LeaderAddr)
}

// Is makes NotLeaderError an errdefs.ErrUnavailable.
func (e *NotLeaderError) Is(target error) bool { return target == errdefs.ErrUnavailable }

// Barrier returns once every entry committed before the call is applied on
// this member (which must be the leader). Control loops call it after
// winning an election, before reading the store.
func (n *Node) Barrier(ctx context.Context) error {
	return n.Propose(ctx, CmdNoop, nil)
}

func (n *Node) readDone(rs raft.ReadState) {
	if len(rs.RequestCtx) != 8 {
		return
	}
	id := binary.BigEndian.Uint64(rs.RequestCtx)
	n.mu.Lock()
	if ch, ok := n.reads[id]; ok {
		ch <- rs.Index
		delete(n.reads, id)
	}
	n.mu.Unlock()
}

// WaitApplied returns once the entry at index is applied locally.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	for {
		n.appliedMu.Lock()
		ch := n.appliedNotify
		n.appliedMu.Unlock()
		if n.applied.Load() >= index {
			return nil
		}
		intr := n.interrupted()
		if df := n.fault.Load(); df != nil {
			return df
		}
		select {
		case <-ch:
		case <-intr:
		case <-ctx.Done():
			return n.ctxError(ctx, ctx.Err())
		case <-n.done:
			return errdefs.ErrStopped
		}
	}
}

// AppliedIndex is the index of the last applied entry.
func (n *Node) AppliedIndex() uint64 { return n.applied.Load() }

// RaftID is this member's raft ID.
func (n *Node) RaftID() uint64 { return n.raftID }

// SetRaftID records the raft ID a member about to join (JoinExisting) was
// given, in its log and here. Call it before SeedMembers and Run: RaftID
// and Members read the ID without a lock once the member runs.
func (n *Node) SetRaftID(id uint64) error {
	if err := n.storage.SetRaftID(id); err != nil {
		return err
	}
	n.raftID = id
	return nil
}

// Store is the object store the node applies to.
func (n *Node) Store() *Store { return n.store }

// Started is closed once Run has started raft.
func (n *Node) Started() <-chan struct{} { return n.started }

// Done is closed when Run has returned.
func (n *Node) Done() <-chan struct{} { return n.done }
