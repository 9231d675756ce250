package simagent

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/internal/remotes"
	api "github.com/shoal-project/shoal/proto"
)

// Node is one simulated node.
type Node struct {
	ID, Hostname string

	f    *Fleet
	dial DialFunc
	// remotes chooses the manager of each session, as the real agent's.
	remotes *remotes.Remotes
	cancel  context.CancelFunc // ends the node's root context (Fleet.Close)

	sess atomic.Pointer[session] // the open session, nil between sessions
	// conns are the node's connections by manager address, owned by run:
	// kept across sessions as the real agent keeps them (node/member.go's
	// dial), so that a session that ends costs no new TLS handshake, and
	// closed when the node stops.
	conns map[string]*grpc.ClientConn
}

// session is one open session of a node: its connection's dispatcher
// client, its heartbeat schedule and its unsent status reports.
type session struct {
	id     string
	client api.DispatcherClient
	ctx    context.Context
	cancel context.CancelFunc

	nextBeat   atomic.Int64 // unix nanoseconds
	beatQueued atomic.Bool
	failures   atomic.Int32 // heartbeats failed in a row

	// retryReport is when reports that timed out go again (unix
	// nanoseconds; 0: none waits): the fleet's scheduler queues them.
	retryReport atomic.Int64

	mu             sync.Mutex
	pending        map[string]*api.TaskStatus // by task ID, the latest state
	reportQueued   bool                       // queued, or waiting for retryReport
	reportTimeouts int                        // reports timed out in a row
	cause          string                     // why the session was ended from this side, "" if it was not
	invalid        bool                       // the manager said the session is unknown (cause)
}

// endErr ends the session for an RPC's failure (the first reason counts),
// noting whether the manager forgot the session, as the real agent tells
// (worker.isSessionInvalid): it then opens a new one with the same manager.
func (s *session) endErr(where string, err error) {
	s.mu.Lock()
	if s.cause == "" {
		s.cause = causeOf(where, err)
		switch status.Code(err) {
		case codes.NotFound, codes.FailedPrecondition:
			s.invalid = true
		}
	}
	s.mu.Unlock()
	s.cancel()
}

// addrPattern matches the IP addresses and ports in error messages.
var addrPattern = regexp.MustCompile(`(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]*\])(:\d+)?`)

// causeOf words an RPC failure for Stats.Ends: where, the gRPC code, and
// the start of the message, its addresses replaced by ADDR (a TCP error
// names the node's own ephemeral port: each would be a cause of its own).
func causeOf(where string, err error) string {
	st := status.Convert(err)
	msg := addrPattern.ReplaceAllString(st.Message(), "ADDR")
	if len(msg) > 120 {
		msg = msg[:120]
	}
	return fmt.Sprintf("%s: %v: %s", where, st.Code(), msg)
}

// maxBackoff is Config.BackoffMax's default, as the real agent's
// (worker.Config.BackoffMax). It was 2 s: at 10,000 nodes after a leader
// change, their reconnections (a TLS handshake on each side per attempt)
// took a third of two cores for minutes and no leader held.
const maxBackoff = 8 * time.Second

// maxHeartbeatFailures ends a session, as the real agent's default.
const maxHeartbeatFailures = 3

// reportBatch bounds the updates of one UpdateTaskStatus call.
const reportBatch = 2000

// Connected reports whether the node has an open session.
func (n *Node) Connected() bool { return n.sess.Load() != nil }

// run keeps a session open until ctx ends. It picks each session's
// manager as the real agent does (internal/remotes: at random, a manager's
// chance halved for each failure since its last session there, never the
// one that just failed), and stays with the manager that only forgot the
// session.
func (n *Node) run(ctx context.Context) {
	defer n.closeConns("")
	backoff := n.f.cfg.BackoffMin
	var spread time.Duration // after an established session: a random wait up to n.f.cfg.ReconnectSpread
	var addr, avoid string
	for {
		began := time.Now()
		if addrs := n.f.cfg.Managers(); len(addrs) > 0 {
			n.remotes.Replace(weighted(addrs))
			if addr == "" {
				addr = n.remotes.Pick(avoid)
			}
			out := n.session(ctx, addr)
			if ctx.Err() != nil {
				return
			}
			n.f.ended(addr, out)
			if out.established {
				n.remotes.Succeeded(addr)
			}
			if !out.established || !out.invalid {
				n.remotes.Failed(addr)
				avoid, addr = addr, ""
			}
			if out.established && n.f.cfg.ReconnectSpread > 0 {
				spread = rand.N(n.f.cfg.ReconnectSpread + 1)
			}
		}
		if time.Since(began) > 10*time.Second {
			backoff = n.f.cfg.BackoffMin
		}
		wait := max(backoff/2+rand.N(backoff/2+1), spread)
		spread = 0
		backoff = min(2*backoff, n.f.cfg.BackoffMax)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// weighted gives each manager address the default weight, as a manager's
// list gives them to a real agent.
func weighted(addrs []string) []*api.WeightedPeer {
	out := make([]*api.WeightedPeer, len(addrs))
	for i, a := range addrs {
		out[i] = &api.WeightedPeer{Peer: &api.Peer{Addr: a}, Weight: 1}
	}
	return out
}

// conn returns the node's connection to addr, made on first use.
func (n *Node) conn(ctx context.Context, addr string) (*grpc.ClientConn, error) {
	if c := n.conns[addr]; c != nil {
		return c, nil
	}
	// The new connection is counted before it is made, so that nodes
	// dialing at once cannot all pass the bound.
	if limit := n.f.cfg.MaxConns; n.f.stats.conns.Add(1) > int64(limit) && limit > 0 {
		n.f.stats.connsClosed.Add(int64(n.closeConns(addr)))
	}
	n.f.stats.dials.Add(1)
	c, err := n.dial(ctx, addr)
	if err != nil {
		n.f.stats.conns.Add(-1)
		return nil, err
	}
	if n.conns == nil {
		n.conns = map[string]*grpc.ClientConn{}
	}
	n.conns[addr] = c
	return c, nil
}

// closeConns closes the node's connections except the one to keep, and
// says how many it closed.
func (n *Node) closeConns(keep string) int {
	closed := 0
	for addr, c := range n.conns {
		if addr == keep {
			continue
		}
		c.Close()
		delete(n.conns, addr)
		closed++
	}
	n.f.stats.conns.Add(-int64(closed))
	return closed
}

// sessionOutcome is how a session ended: why (Stats.Ends), whether it had
// been established (the first session message came), and whether the
// manager said it did not know it (a new leader, a restart).
type sessionOutcome struct {
	cause                string
	established, invalid bool
}

// session runs one session on the node's connection to addr, until it
// fails or ctx ends, and says how it ended. It owns the assignments
// goroutine.
func (n *Node) session(ctx context.Context, addr string) sessionOutcome {
	conn, err := n.conn(ctx, addr)
	if err != nil {
		return sessionOutcome{cause: "dial: " + err.Error()}
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	client := api.NewDispatcherClient(conn)
	stream, err := client.Session(sctx, &api.SessionRequest{Description: &api.NodeDescription{
		Hostname:  n.Hostname,
		Platform:  &api.Platform{Os: "linux", Architecture: "amd64"},
		Resources: &api.Resources{NanoCpus: 2e9, MemoryBytes: 4 << 30},
		Engine:    &api.EngineDescription{EngineVersion: "simagent"},
	}})
	if err != nil {
		return sessionOutcome{cause: causeOf("open session", err)}
	}
	first, err := stream.Recv()
	if err != nil {
		return sessionOutcome{cause: causeOf("open session", err)}
	}
	if first.GetSessionId() == "" {
		return sessionOutcome{cause: "open session: no session ID"}
	}
	s := &session{id: first.SessionId, client: client, ctx: sctx, cancel: cancel, pending: map[string]*api.TaskStatus{}}
	s.nextBeat.Store(time.Now().UnixNano()) // heartbeat at once, as the real agent
	st := &n.f.stats
	st.sessionsOpened.Add(1)
	st.liveSessions.Add(1)
	n.sess.Store(s)
	defer func() {
		n.sess.CompareAndSwap(s, nil)
		st.liveSessions.Add(-1)
		st.sessionsEnded.Add(1)
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.endErr(n.assignments(s))
	}()
	for {
		if _, err = stream.Recv(); err != nil {
			break // manager list and overlay updates are dropped
		}
	}
	s.endErr("session stream", err)
	wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return sessionOutcome{cause: s.cause, established: true, invalid: s.invalid}
}

// assignments follows the node's assignment stream and queues the status
// each task needs, until the session ends; it says where and why it
// stopped.
func (n *Node) assignments(s *session) (string, error) {
	stream, err := s.client.Assignments(s.ctx, &api.AssignmentsRequest{SessionId: s.id})
	if err != nil {
		return "open assignments", err
	}
	st := &n.f.stats
	for {
		msg, err := stream.Recv()
		if err != nil {
			return "assignments stream", err
		}
		st.assignmentMessages.Add(1)
		st.assignmentChanges.Add(int64(len(msg.GetChanges())))
		queued := false
		s.mu.Lock()
		for _, c := range msg.GetChanges() {
			t := c.GetAssignment().GetTask()
			if t == nil || c.GetAction() != api.AssignmentChange_UPDATE {
				continue // secrets and configs need nothing; nor does a removed task (no container)
			}
			if next := nextStatus(t); next != nil {
				if old := s.pending[t.Id]; old == nil || old.State <= next.State {
					s.pending[t.Id] = next
				}
			}
		}
		if len(s.pending) > 0 && !s.reportQueued {
			s.reportQueued, queued = true, true
		}
		s.mu.Unlock()
		if queued {
			n.f.reports.push(n)
		}
	}
}

// nextStatus is the status a simulated node reports for an assigned task,
// nil when it has nothing to say: RUNNING at once while the task should
// run, SHUTDOWN once it should stop.
func nextStatus(t *api.Task) *api.TaskStatus {
	cur := t.GetStatus().GetState()
	if t.DesiredState <= api.TaskState_RUNNING {
		if cur < api.TaskState_RUNNING {
			return &api.TaskStatus{State: api.TaskState_RUNNING, Message: "started"}
		}
		return nil
	}
	if cur <= api.TaskState_RUNNING {
		return &api.TaskStatus{State: api.TaskState_SHUTDOWN, Message: "shutdown"}
	}
	return nil
}

// beat sends one heartbeat of the node's session (a pool worker).
func (n *Node) beat(ctx context.Context) {
	s := n.sess.Load()
	if s == nil {
		return
	}
	defer s.beatQueued.Store(false)
	cctx, cancel := context.WithTimeout(s.ctx, n.f.cfg.CallTimeout)
	began := time.Now()
	resp, err := s.client.Heartbeat(cctx, &api.HeartbeatRequest{SessionId: s.id})
	cancel()
	st := &n.f.stats
	st.observeBeat(time.Since(began))
	if err != nil {
		if s.ctx.Err() != nil {
			return
		}
		st.heartbeatErrors.Add(1)
		if status.Code(err) == codes.NotFound || s.failures.Add(1) >= maxHeartbeatFailures {
			s.endErr("heartbeat", err) // session invalid: open a new one
			return
		}
		s.nextBeat.Store(time.Now().Add(time.Second).UnixNano())
		return
	}
	st.heartbeats.Add(1)
	s.failures.Store(0)
	period := resp.GetPeriod().AsDuration()
	if period <= 0 {
		period = api.DefaultHeartbeatPeriod
	}
	s.nextBeat.Store(time.Now().Add(period).UnixNano())
}

// maxReportTimeouts reports in a row that run out of time end the
// session, as the real agent's default (worker.Config.MaxStatusTimeouts):
// a manager answers a report once it is committed, late when the leader is
// loaded with writes.
const maxReportTimeouts = 3

// retryLater puts back the updates of a report that ran out of time, to go
// again 1 s per timeout in a row later, and reports true; false once
// maxReportTimeouts are reached (the caller ends the session).
func (s *session) retryLater(updates []*api.TaskStatusUpdate) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reportTimeouts+1 >= maxReportTimeouts {
		return false
	}
	s.reportTimeouts++
	for _, u := range updates {
		if old := s.pending[u.TaskId]; old == nil || old.State < u.Status.State {
			s.pending[u.TaskId] = u.Status
		}
	}
	// Queued meanwhile by a new update, or not: either way the node is
	// queued again only by the scheduler, at retryReport.
	s.reportQueued = true
	s.retryReport.Store(time.Now().Add(time.Duration(s.reportTimeouts) * time.Second).UnixNano())
	return true
}

// slowBeatBounds are the heartbeat round trips Stats.SlowHeartbeats
// counts calls above.
var slowBeatBounds = [...]time.Duration{time.Second, 2500 * time.Millisecond, 5 * time.Second}

// observeBeat records one heartbeat call's round trip.
func (c *counters) observeBeat(took time.Duration) {
	for i, b := range slowBeatBounds {
		if took > b {
			c.slowBeats[i].Add(1)
		}
	}
	for {
		cur := c.beatMax.Load()
		if int64(took) <= cur || c.beatMax.CompareAndSwap(cur, int64(took)) {
			return
		}
	}
}

// report sends the node's pending status reports, one batch per call (a
// pool worker). A call that runs out of time puts its updates back for
// later (retryLater), up to maxReportTimeouts in a row; any other failure
// ends the session, whose successor finds what is left to report in its
// COMPLETE assignment set.
func (n *Node) report(ctx context.Context) {
	s := n.sess.Load()
	if s == nil {
		return
	}
	s.mu.Lock()
	updates := make([]*api.TaskStatusUpdate, 0, min(len(s.pending), reportBatch))
	var running, shutdown int64
	for id, ts := range s.pending {
		if len(updates) == reportBatch {
			break
		}
		updates = append(updates, &api.TaskStatusUpdate{TaskId: id, Status: ts})
		if ts.State == api.TaskState_RUNNING {
			running++
		} else {
			shutdown++
		}
		delete(s.pending, id)
	}
	more := len(s.pending) > 0
	if !more {
		s.reportQueued = false
	}
	s.mu.Unlock()
	if len(updates) > 0 {
		cctx, cancel := context.WithTimeout(s.ctx, n.f.cfg.CallTimeout)
		_, err := s.client.UpdateTaskStatus(cctx, &api.UpdateTaskStatusRequest{SessionId: s.id, Updates: updates})
		cancel()
		st := &n.f.stats
		st.reportCalls.Add(1)
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			st.reportErrors.Add(1)
			if status.Code(err) == codes.DeadlineExceeded && s.retryLater(updates) {
				return
			}
			s.endErr("report", err)
			return
		}
		st.reportedRunning.Add(running)
		st.reportedShutdown.Add(shutdown)
		s.mu.Lock()
		s.reportTimeouts = 0
		s.mu.Unlock()
	}
	if more {
		n.f.reports.push(n)
	}
}
