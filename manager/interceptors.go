package manager

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/fwdmeta"
)

// Methods of these services are served by the leader; a follower forwards
// them. Raft is always local; CA calls are forwarded too because issuing a
// certificate writes the node to the store.
var leaderServices = map[string]bool{
	"shoal.v1.Control":     true,
	"shoal.v1.Dispatcher":  true,
	"shoal.v1.Logs":        true,
	"shoal.v1.LogBroker":   true,
	"shoal.v1.Stats":       true,
	"shoal.v1.StatsBroker": true,
	"shoal.v1.Watch":       true,
	"shoal.v1.CA":          true,
	// Followers relay agents' heartbeats in batches (hbrelay.go).
	"shoal.v1.HeartbeatRelay": true,
}

// nodeServices act for the calling node: forwarding them names it.
var nodeServices = map[string]bool{"shoal.v1.Dispatcher": true, "shoal.v1.LogBroker": true, "shoal.v1.StatsBroker": true, "shoal.v1.CA": true}

func serviceOf(method string) string {
	s, _, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	return s
}

// route decides whether a call must go to the leader, and with which
// forwarded-for identity.
func (m *Manager) route(ctx context.Context, method string) (forward bool, forFor string, err error) {
	if !leaderServices[serviceOf(method)] || m.node.IsLeader() {
		return false, "", nil
	}
	if IsForwarded(ctx) {
		// Sent here by a manager that thought we lead: refuse rather
		// than bounce it around.
		return false, "", m.node.LeaderError()
	}
	if serviceOf(method) == "shoal.v1.Control" && m.node.DiskFault() != nil && m.node.LeaderMember() == nil {
		// This manager cannot write its raft log and knows no leader to
		// forward to: its own store answers. Reads work (they may lag);
		// writes fail with the disk fault, which names the file and fix.
		return false, "", nil
	}
	if nodeServices[serviceOf(method)] {
		if id, ok := fwdmeta.Caller(ctx); ok {
			forFor = id // the CA's bootstrap calls may come without one
		}
	}
	return true, forFor, nil
}

// leaderConn dials the current leader.
func (m *Manager) leaderConn(ctx context.Context) (*grpc.ClientConn, error) {
	l := m.node.LeaderMember()
	if l == nil || l.NodeId == m.cfg.NodeID {
		return nil, m.node.LeaderError()
	}
	return m.cfg.Dial(ctx, l.Addr)
}

// UnaryInterceptor forwards leader-only calls that reach a follower. Put it
// after the authorization interceptor.
func (m *Manager) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		m.awaitLeader(ctx, info.FullMethod)
		for retried := false; ; retried = true {
			fwd, forFor, err := m.route(ctx, info.FullMethod)
			if err != nil {
				return nil, err
			}
			if !fwd {
				return m.serveHere(ctx, req, info, handler)
			}
			if info.FullMethod == relayedMethod {
				return m.relayHeartbeat(ctx, forFor, req)
			}
			lead := m.node.Leader()
			conn, err := m.leaderConn(ctx)
			if err != nil {
				return nil, err
			}
			resp, err := ForwardUnary(ctx, conn, info.FullMethod, req, forFor)
			if err != nil && !retried && m.awaitNextLeader(ctx, info.FullMethod, lead, err) {
				continue
			}
			return resp, m.forwardError(ctx, info.FullMethod, err)
		}
	}
}

// serveHere serves a unary call on this manager.
func (m *Manager) serveHere(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (_ any, err error) {
	defer m.recoverCall(info.FullMethod, &err)
	if err := m.readBarrier(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// awaitNextLeader decides whether a unary call whose forward to the leader
// lead failed goes again, once: when the failure says the call never
// reached it (its connection refused or down: a leader killed a moment
// ago, which this follower has not yet forgotten), or the call only reads,
// it waits for another leader, at most the election hold, and reports
// whether one is known. The survivors elect one within about a second of a
// leader's death; until this change a write reaching a follower in that
// second failed ("forwarded to the leader, which refused the connection")
// while the write a moment later went through. Streams are not retried:
// their messages may have been read already.
func (m *Manager) awaitNextLeader(ctx context.Context, method string, lead uint64, err error) bool {
	if m.cfg.ElectionHold < 0 || IsForwarded(ctx) {
		return false
	}
	if f, ok := errdefs.Transport(err); !ok || (f.MayHaveArrived && !errdefs.ReadOnly(method)) {
		return false
	}
	another := func() bool { l := m.node.Leader(); return l != 0 && l != lead }
	awaitElection(ctx, m.leaders, func() bool { return !another() }, m.cfg.Clock, m.holdBound())
	if !another() {
		return false
	}
	m.heldCalls.Add(1)
	return true
}

// readBarrier makes a Control call that the leader serves wait until the
// leader has confirmed, with a quorum, that it still leads, and has applied
// everything committed before the call (raft ReadIndex). Without it a leader
// that has been deposed without knowing it yet (paused, or cut off, while the
// others elected a new leader and wrote) would answer from its stale store:
// reads would miss acknowledged writes, and a write's version check would
// see an old version and report a false conflict. Such a leader's barrier
// fails instead (no quorum answers it), and the call with it: at once when
// it learns it no longer leads, else at the call's deadline.
func (m *Manager) readBarrier(ctx context.Context, method string) error {
	if serviceOf(method) != "shoal.v1.Control" || !m.node.IsLeader() {
		return nil // a follower serving its own store (disk fault) says its reads may lag
	}
	// LinearizableRead fails at once when the member stops leading during
	// the read; rounds are shared by concurrent calls (raftstore).
	err := m.node.LinearizableRead(ctx)
	if err != nil && ctx.Err() == nil && !m.node.IsLeader() {
		return errdefs.Unavailable("this manager stopped leading while it confirmed its leadership for the call: %s (%v)",
			errdefs.Outcome(method, false), m.node.LeaderError())
	}
	if errors.Is(err, errdefs.ErrDeadlineExceeded) {
		return errdefs.DeadlineExceeded("this manager could not confirm with a majority of the managers that it still leads before the call's deadline (it may have been deposed; %s): %s",
			m.node.QuorumStatus(), errdefs.Outcome(method, false))
	}
	return err
}

// forwardError explains a failure to reach the leader in the swarm's terms
// instead of a raw transport error ("keepalive ping failed to receive ACK
// within timeout", "EOF"): what happened to the leader, and whether the
// call may have been applied. Answers of the leader pass unchanged.
func (m *Manager) forwardError(ctx context.Context, method string, err error) error {
	if err == nil {
		return nil
	}
	l := m.node.LeaderMember()
	who := "the leader"
	if l != nil {
		who = fmt.Sprintf("the leader %s at %s", l.NodeId, l.Addr)
	}
	return explainForward(ctx, method, who, m.node.QuorumStatus(), err)
}

// explainForward words a forwarded call's failure; who names the leader.
func explainForward(ctx context.Context, method, who, quorum string, err error) error {
	if f, ok := errdefs.Transport(err); ok {
		return errdefs.Unavailable("the call was forwarded to %s, which %s: %s. If the leader is down, the other managers elect a new one within a few seconds (%s)",
			who, f.What, errdefs.Outcome(method, f.MayHaveArrived), quorum)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errdefs.DeadlineExceeded("%s did not answer before the call's deadline: %s (%s)",
			who, errdefs.Outcome(method, true), quorum)
	}
	return err
}

// StreamInterceptor is UnaryInterceptor for streams.
func (m *Manager) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		m.awaitLeader(ss.Context(), info.FullMethod)
		fwd, forFor, err := m.route(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		if !fwd {
			defer m.recoverCall(info.FullMethod, &err)
			return handler(srv, ss)
		}
		conn, err := m.leaderConn(ss.Context())
		if err != nil {
			return err
		}
		return m.forwardError(ss.Context(), info.FullMethod, ForwardStream(ss, conn, info.FullMethod, forFor))
	}
}

// recoverCall turns a panic while serving a call into an error for the
// caller and a log line with the stack: no request may take a manager down.
func (m *Manager) recoverCall(method string, err *error) {
	r := recover()
	if r == nil {
		return
	}
	m.log.Error("panic while serving a call; the manager goes on", "method", method, "panic", r, "stack", string(debug.Stack()))
	*err = errdefs.Internal("the manager failed while serving %s (%v): the call may or may not have taken effect; "+
		"check the state and retry, and please report this bug", method, r)
}
