package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	api "github.com/shoal-project/shoal/proto"
)

// sessionOutcome is how one session ended.
type sessionOutcome struct {
	id          string // the session ID to resume with ("" after an invalid one)
	established bool   // the first session message arrived
	local       bool   // failed on this node's side (describe), not the manager's
	err         error
}

// sessionLoop keeps a session open until ctx ends: after a session ends it
// waits a jittered exponential backoff (reset once a session has lasted
// more than a heartbeat period) and opens a new one, with the same manager
// when only the session was invalid, with another one otherwise.
func (a *Agent) sessionLoop(ctx context.Context) error {
	bo := newBackoff(a.cfg.BackoffMin, a.cfg.BackoffMax, a.seed)
	var addr, avoid, sessionID string
	removedAnswers := 0
	for ctx.Err() == nil {
		if addr == "" {
			addr = a.remotes.Pick(avoid)
		}
		began := a.cfg.Clock.Now()
		out := a.runSession(ctx, addr, sessionID)
		if ctx.Err() != nil {
			return nil
		}
		if isRemoved(out.err) {
			// Managers share the list of removed nodes: two answers in a
			// row settle it, and this node is no longer in the swarm.
			if removedAnswers++; removedAnswers >= 2 {
				a.log.Warn("this node was removed from the swarm", "manager", addr, "err", out.err)
				return ErrNodeRemoved
			}
		} else {
			removedAnswers = 0
		}
		sessionID = out.id
		cur := addr
		if out.established && a.cfg.Clock.Since(began) > a.heartbeatPeriod() {
			bo.reset()
		}
		switch {
		case out.local:
		case out.established && isSessionInvalid(out.err):
			// The manager forgot the session (a restart, a new leader):
			// it is alive, so open a fresh session with it.
		default:
			a.remotes.Failed(addr)
			avoid, addr = addr, ""
		}
		// However long the failures last, retry within two heartbeat
		// periods: a new leader gives the nodes it knows six periods to
		// open a session before it marks them down, and a backoff grown
		// while the managers elected (up to BackoffMax, 8 s) could sleep
		// through all of that grace.
		bo.max = min(a.cfg.BackoffMax, max(a.cfg.BackoffMin, sessionRetryPeriods*a.heartbeatPeriod()))
		delay := bo.next()
		if out.established && !out.local {
			delay = max(delay, reconnectSpread(a.heartbeatPeriod(), bo.rng))
		}
		a.log.Warn("session ended", "manager", cur, "err", out.err, "retry_in", delay)
		// A RetryNow during the attempt counts too: the network came back
		// while it was failing.
		t := a.cfg.Clock.NewTimer(delay)
		select {
		case <-t.Chan():
		case <-a.retry:
			bo.reset()
		case <-ctx.Done():
			t.Stop()
			return nil
		}
		t.Stop()
	}
	return nil
}

// sessionRetryPeriods bounds the wait between session attempts, in
// heartbeat periods.
const sessionRetryPeriods = 2

// reconnectSpread is the wait before the first attempt after a session
// that had been established ended on the managers' side: a random time up
// to a fifth of the heartbeat period (1 s at the default 5 s). A leader
// that dies ends every agent's session at once (sessions held by
// followers are forwarded to it); with 10,000 agents all coming back
// within the backoff's first 100 ms, a surviving manager read the other's
// vote messages 0.9 s late, and the election waited (a 200,000-task
// failover run). Spread over a second they arrive at a tenth of that
// rate, and the nodes are still back well within the new leader's grace
// (six periods).
func reconnectSpread(period time.Duration, rng *rand.Rand) time.Duration {
	if period <= 0 {
		return 0
	}
	return time.Duration(rng.Int64N(int64(period/5) + 1))
}

// ErrNodeRemoved is what Run returns when the managers say this node was
// removed from the swarm (`shoal node rm`): its certificate is refused
// everywhere, so it can never work again; the daemon leaves the swarm.
var ErrNodeRemoved = errors.New("this node was removed from the swarm")

// isRemoved tells whether err is a manager refusing this node's certificate
// because the node was removed.
func isRemoved(err error) bool {
	st, ok := status.FromError(errors.Unwrap(err))
	if !ok {
		st, ok = status.FromError(err)
	}
	return ok && st.Code() == codes.PermissionDenied && strings.Contains(st.Message(), "was removed from the cluster")
}

// isSessionInvalid tells whether err says the manager does not know the
// session: such an error ends the session.
func isSessionInvalid(err error) bool {
	// status.Code looks through wrapping.
	switch status.Code(err) {
	case codes.NotFound, codes.FailedPrecondition:
		return true
	}
	return false
}

// refusalHint explains the TLS alert a manager answers a new connection
// with while it is overloaded (manager.AdmitHandshake): gRPC reports only
// "remote error: tls: internal error".
func refusalHint(err error) string {
	if strings.Contains(err.Error(), "tls: internal error") {
		return " (a manager refuses new connections with this alert while it is overloaded, as after a leader change at thousands of nodes, or while it reads its raft snapshot and log after a restart; the agent tries another manager after its backoff)"
	}
	return ""
}

// minHeartbeatPeriod keeps a manager's odd answer from making the agent
// spin.
const minHeartbeatPeriod = 100 * time.Millisecond

// session is one established session with a manager.
type session struct {
	a      *Agent
	id     string
	addr   string
	client api.DispatcherClient
	logs   api.LogBrokerClient
}

// runSession opens a session with the manager at addr and serves it until
// any of its streams or calls fails, or ctx ends.
func (a *Agent) runSession(ctx context.Context, addr, prevID string) sessionOutcome {
	out := sessionOutcome{id: prevID}
	dctx, cancel := context.WithTimeout(ctx, a.cfg.RPCTimeout)
	desc, err := a.cfg.Executor.Describe(dctx)
	cancel()
	if err != nil {
		out.local, out.err = true, fmt.Errorf("describe the node: %w", err)
		return out
	}
	dctx, cancel = context.WithTimeout(ctx, a.cfg.RPCTimeout)
	conn, err := a.cfg.Dial(dctx, addr)
	cancel()
	if err != nil {
		out.err = fmt.Errorf("dial %s: %w", addr, err)
		return out
	}

	ctx, cancel = context.WithCancel(ctx)
	defer cancel()
	client := api.NewDispatcherClient(conn)
	// The stream itself has no deadline (it lives as long as the session);
	// its first message must come within RPCTimeout. Network deadlines are
	// real time: gRPC sends them to the server as durations.
	timer := time.AfterFunc(a.cfg.RPCTimeout, cancel)
	stream, err := client.Session(ctx, &api.SessionRequest{Description: desc, SessionId: prevID})
	var first *api.SessionMessage
	if err == nil {
		first, err = stream.Recv()
	}
	timedOut := !timer.Stop()
	switch {
	case err != nil && timedOut:
		out.err = fmt.Errorf("session with %s: no answer within %v", addr, a.cfg.RPCTimeout)
		return out
	case err != nil:
		out.err = fmt.Errorf("open session with %s: %w%s", addr, err, refusalHint(err))
		if isSessionInvalid(err) {
			out.id = "" // do not offer the refused ID again
		}
		return out
	case first.GetSessionId() == "":
		out.err = fmt.Errorf("session with %s: the first message carries no session ID", addr)
		return out
	}
	out.id, out.established = first.GetSessionId(), true
	a.applySessionMessage(first)
	a.remotes.Succeeded(addr)
	a.log.Info("session established", "manager", addr, "session", out.id)
	a.metrics.sessions.Inc()
	a.metrics.session.Store(&addr)
	defer func() {
		none := ""
		a.metrics.session.Store(&none)
	}()

	s := &session{a: a, id: out.id, addr: addr, client: client, logs: api.NewLogBrokerClient(conn)}
	// The group shares the stream's context: the first failure ends the
	// session stream too.
	g := &group{ctx: ctx, cancel: cancel}
	g.Go(func(ctx context.Context) error { return s.recvSession(stream) })
	g.Go(s.heartbeat)
	g.Go(s.assignments)
	g.Go(s.sendStatuses)
	g.Go(func(ctx context.Context) error { a.serveLogs(ctx, s.logs); return nil })
	g.Go(func(ctx context.Context) error { a.serveStats(ctx, api.NewStatsBrokerClient(conn)); return nil })
	out.err = g.Wait()
	if isSessionInvalid(out.err) {
		out.id = ""
	}
	return out
}

// recvSession applies the session stream's later messages (manager list,
// node updates); its end ends the session.
func (s *session) recvSession(stream api.Dispatcher_SessionClient) error {
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return errors.New("the manager ended the session stream")
		}
		if err != nil {
			return fmt.Errorf("session stream: %w", err)
		}
		s.a.applySessionMessage(msg)
	}
}

// heartbeat calls Heartbeat at once and then every period the manager
// names, each call bounded by the period. An invalid session ends the
// session at once; so do MaxHeartbeatFailures failures in a row.
//
// The next heartbeat is due a period after the answer, not after the send,
// as SwarmKit's agent: a manager that answers late then hears from each
// node less often, which is backpressure when it is overloaded. Counting
// from the send was tried (session 20): in a 1M create it sent 24 % more
// heartbeats to managers that were already CPU-bound, and the share
// answered after more than a second rose from 35 % to 46 %.
func (s *session) heartbeat(ctx context.Context) error {
	failures := 0
	for {
		period := s.a.heartbeatPeriod()
		hctx, cancel := context.WithTimeout(ctx, period)
		resp, err := s.client.Heartbeat(hctx, &api.HeartbeatRequest{SessionId: s.id})
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case isSessionInvalid(err):
			return fmt.Errorf("heartbeat: %w", err)
		case err != nil:
			failures++
			s.a.metrics.heartbeatFailures.Inc()
			s.a.log.Warn("heartbeat failed", "manager", s.addr, "err", err, "in_a_row", failures)
			if failures >= s.a.cfg.MaxHeartbeatFailures {
				return fmt.Errorf("%d heartbeats failed in a row, the last: %w", failures, err)
			}
		default:
			failures = 0
			if p := resp.GetPeriod().AsDuration(); p > 0 {
				period = max(p, minHeartbeatPeriod)
				s.a.period.Store(int64(period))
			}
		}
		if !sleep(ctx, s.a.cfg.Clock, period) {
			return ctx.Err()
		}
	}
}

// assignments applies the assignments stream. Each COMPLETE message is
// followed by the orphan sweep, which needs to know the whole set.
func (s *session) assignments(ctx context.Context) error {
	stream, err := s.client.Assignments(ctx, &api.AssignmentsRequest{SessionId: s.id})
	if err != nil {
		return fmt.Errorf("assignments: %w", err)
	}
	complete := false
	var parts []*api.AssignmentChange // of a message sent in parts (More)
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return errors.New("the manager ended the assignments stream")
		}
		if err != nil {
			return fmt.Errorf("assignments stream: %w", err)
		}
		if msg.GetMore() {
			// A set too large for one message: applied whole, once
			// its last part arrives.
			parts = append(parts, msg.GetChanges()...)
			continue
		}
		if len(parts) > 0 {
			msg = &api.AssignmentsMessage{Type: msg.GetType(), Changes: append(parts, msg.GetChanges()...)}
			parts = nil
		}
		switch msg.GetType() {
		case api.AssignmentsMessage_COMPLETE:
			complete = true
		default:
			if !complete {
				// Applied anyway: updates are safe, only the removal
				// of what is not listed waits for the complete set.
				s.a.log.Warn("incremental assignments before the complete set", "manager", s.addr)
			}
		}
		s.a.applyAssignments(msg)
		if msg.GetType() == api.AssignmentsMessage_COMPLETE {
			s.a.sweepOrphans(ctx)
		}
	}
}

// sendStatuses flushes the pending status updates every
// StatusFlushInterval, or at once when a whole batch is pending. A call
// that runs out of time keeps the session, up to MaxStatusTimeouts in a
// row, and the next flush waits 1 s per timeout so far; any other failure
// ends the session. Updates not delivered stay pending, for this session
// or the next.
func (s *session) sendStatuses(ctx context.Context) error {
	t := s.a.cfg.Clock.NewTicker(s.a.cfg.StatusFlushInterval)
	defer t.Stop()
	send := func(ctx context.Context, updates []*api.TaskStatusUpdate) error {
		ctx, cancel := context.WithTimeout(ctx, s.a.cfg.RPCTimeout)
		defer cancel()
		_, err := s.client.UpdateTaskStatus(ctx, &api.UpdateTaskStatusRequest{SessionId: s.id, Updates: updates})
		if status.Code(err) == codes.InvalidArgument {
			// Sending the same batch again would fail the same way,
			// session after session: drop it rather than wedge.
			s.a.log.Error("the manager refused a batch of status updates; dropping it", "err", err, "updates", len(updates))
			return nil
		}
		return err
	}
	timeouts := 0
	var notBefore time.Time // after a timeout, no flush before this
	for {
		if now := s.a.cfg.Clock.Now(); !now.Before(notBefore) {
			err := s.a.reporter.flush(ctx, send)
			switch {
			case err == nil:
				timeouts = 0
			case ctx.Err() != nil:
				return ctx.Err()
			case status.Code(err) == codes.DeadlineExceeded && timeouts+1 < s.a.cfg.MaxStatusTimeouts:
				timeouts++
				notBefore = s.a.cfg.Clock.Now().Add(time.Duration(timeouts) * time.Second)
				s.a.log.Warn("the manager did not answer a status report in time; keeping the session and sending it again later",
					"manager", s.addr, "timeouts_in_a_row", timeouts, "err", err)
			default:
				return fmt.Errorf("update task status: %w", err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.Chan():
		case <-s.a.reporter.full:
		}
	}
}

// group runs goroutines that share a context cancelled by the first error.
type group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

func (g *group) Go(fn func(context.Context) error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := fn(g.ctx); err != nil {
			g.once.Do(func() { g.err = err; g.cancel() })
		}
	}()
}

// Wait returns the first error once every goroutine has returned.
func (g *group) Wait() error {
	g.wg.Wait()
	g.cancel()
	return g.err
}
