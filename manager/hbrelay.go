package manager

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Heartbeat relaying. An agent's session may be carried by any manager; a
// follower used to forward each heartbeat to the leader as a call of its
// own, so the leader paid one gRPC call (TLS record, syscalls, goroutine)
// per heartbeat of every node in the cluster: 2,000 calls/s at 10,000
// nodes. A follower now gathers the heartbeats that reach it for
// relayWindow and sends them in one HeartbeatRelay.Relay call; each agent
// gets its own verdict. An agent's heartbeat waits at most relayWindow
// longer, against a period of seconds.
const (
	// relayWindow is how long a follower gathers heartbeats before it
	// relays them.
	relayWindow = 50 * time.Millisecond
	// maxRelayBatch caps the heartbeats in one Relay call (about 60 bytes
	// each on the wire); a fuller window is sent at once.
	maxRelayBatch = 4096
	// relayTimeout bounds one Relay call.
	relayTimeout = 5 * time.Second
	// relaySlow is a Relay call long enough to log: a fifth of the
	// default heartbeat period, spent by every heartbeat in the batch.
	relaySlow = time.Second
	// relaySlowLogEvery spaces the log lines about slow relays.
	relaySlowLogEvery = 10 * time.Second
)

// relayFunc sends one batch to the leader.
type relayFunc func(ctx context.Context, req *api.RelayHeartbeatsRequest) (*api.RelayHeartbeatsResponse, error)

// heartbeatRelay batches heartbeats for the leader. Safe for concurrent
// use. Its goroutines (one per batch in flight, each bounded by
// relayTimeout) end by stop, which fails what is still pending.
type heartbeatRelay struct {
	send  relayFunc
	clock clockwork.Clock

	ctx    context.Context // ends with stop
	cancel context.CancelFunc
	wg     sync.WaitGroup

	relays, relayed atomic.Uint64 // Relay calls sent, and the heartbeats they carried
	// latency is each Relay call's round trip, failed ones included:
	// what every heartbeat of its batch waited on top of the window.
	latency raftstore.Histogram

	log     *slog.Logger
	mu      sync.Mutex
	stopped bool // set by stop: no batch starts after it
	pending []relayWaiter
	// Slow relays since the last line about them (logged at most once
	// every relaySlowLogEvery).
	slow       slowRelays
	slowLogged time.Time
}

// slowRelays sums the slow Relay calls between two log lines.
type slowRelays struct {
	calls, beats, failed int
	longest              time.Duration
	err                  error // the last failure's
}

type relayWaiter struct {
	beat *api.RelayedHeartbeat
	done chan relayResult // buffered: a flush never blocks on a waiter that left
}

type relayResult struct {
	period time.Duration
	err    error
}

func newHeartbeatRelay(send relayFunc, clock clockwork.Clock, log *slog.Logger) *heartbeatRelay {
	ctx, cancel := context.WithCancel(context.Background())
	return &heartbeatRelay{send: send, clock: clock, ctx: ctx, cancel: cancel, log: log}
}

// observe records one Relay call's round trip, and logs slow ones, at most
// once every relaySlowLogEvery with what came since the last line: a
// leader that answers relays late sees its followers' agents fall silent
// (and holds them, or marks them down) while nothing else says why.
func (r *heartbeatRelay) observe(took time.Duration, beats int, err error) {
	r.latency.Observe(took)
	if took < relaySlow {
		return
	}
	r.mu.Lock()
	sl := &r.slow
	sl.calls++
	sl.beats += beats
	sl.longest = max(sl.longest, took)
	if err != nil {
		sl.failed++
		sl.err = err
	}
	now := r.clock.Now()
	var line slowRelays
	if now.Sub(r.slowLogged) >= relaySlowLogEvery {
		line, r.slow, r.slowLogged = *sl, slowRelays{}, now
	}
	r.mu.Unlock()
	if line.calls > 0 {
		r.log.Warn("relaying agents' heartbeats to the leader is slow: their heartbeats reach it late, and agents may be held or marked down; look for an overloaded leader or a busy link between the managers",
			"slow_calls", line.calls, "heartbeats", line.beats, "longest", line.longest.Round(time.Millisecond),
			"failed", line.failed, "last_error", line.err, "over", relaySlow)
	}
}

// stop fails the pending heartbeats and waits for the batches in flight.
func (r *heartbeatRelay) stop() {
	r.mu.Lock()
	r.stopped = true
	r.cancel()
	r.mu.Unlock()
	r.wg.Wait()
}

// beat relays one agent's heartbeat and returns the leader's answer to it.
func (r *heartbeatRelay) beat(ctx context.Context, nodeID, sessionID string) (*api.HeartbeatResponse, error) {
	w := relayWaiter{beat: &api.RelayedHeartbeat{NodeId: nodeID, SessionId: sessionID}, done: make(chan relayResult, 1)}
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return nil, errdefs.Unavailable("this manager is stopping: heartbeat not relayed; retry with another manager")
	}
	r.pending = append(r.pending, w)
	var full []relayWaiter
	switch {
	case len(r.pending) >= maxRelayBatch:
		full, r.pending = r.pending, nil
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.flush(full)
		}()
	case len(r.pending) == 1: // the first of a window: send the window when it ends
		r.wg.Add(1)
		r.clock.AfterFunc(relayWindow, func() {
			defer r.wg.Done()
			r.mu.Lock()
			batch := r.pending
			r.pending = nil
			r.mu.Unlock()
			r.flush(batch)
		})
	}
	r.mu.Unlock()
	select {
	case res := <-w.done:
		if res.err != nil {
			return nil, res.err
		}
		return &api.HeartbeatResponse{Period: durationpb.New(res.period)}, nil
	case <-ctx.Done():
		return nil, errdefs.DeadlineExceeded("heartbeat not answered: %v (relayed to the leader)", ctx.Err())
	}
}

// flush sends a batch and hands each waiter its verdict.
func (r *heartbeatRelay) flush(batch []relayWaiter) {
	if len(batch) == 0 {
		return
	}
	req := &api.RelayHeartbeatsRequest{Beats: make([]*api.RelayedHeartbeat, len(batch))}
	for i, w := range batch {
		req.Beats[i] = w.beat
	}
	var resp *api.RelayHeartbeatsResponse
	err := errdefs.Unavailable("this manager is stopping: heartbeat not relayed; retry with another manager")
	if r.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(r.ctx, relayTimeout)
		defer cancel()
		r.relays.Add(1)
		r.relayed.Add(uint64(len(batch)))
		start := r.clock.Now()
		resp, err = r.send(ctx, req)
		r.observe(r.clock.Since(start), len(batch), err)
	}
	if err == nil && len(resp.GetResults()) != len(batch) {
		err = errdefs.Internal("the leader answered %d heartbeat results for %d relayed heartbeats", len(resp.GetResults()), len(batch))
	}
	period := resp.GetPeriod().AsDuration()
	for i, w := range batch {
		res := relayResult{period: period, err: err}
		if err == nil {
			if c := resp.Results[i].GetCode(); c != 0 {
				res.err = errdefs.FromGRPC(status.Error(codes.Code(c), resp.Results[i].GetMessage()))
			}
		}
		w.done <- res
	}
}

// heartbeatRelayServer is the leader's side: it records a follower's batch
// with the dispatcher of the current term.
type heartbeatRelayServer struct {
	api.UnimplementedHeartbeatRelayServer
	m *Manager
}

func (s *heartbeatRelayServer) Relay(ctx context.Context, req *api.RelayHeartbeatsRequest) (*api.RelayHeartbeatsResponse, error) {
	if n := len(req.GetBeats()); n > maxRelayBatch {
		return nil, errdefs.InvalidArgument("%d relayed heartbeats in one call: at most %d", n, maxRelayBatch)
	}
	d := s.m.servingDispatcher(ctx)
	if d == nil {
		return nil, errdefs.Unavailable("this manager is not running a dispatcher (not the leader, or still starting); retry")
	}
	errs, period, err := d.RelayedHeartbeats(req.GetBeats())
	if err != nil {
		return nil, err
	}
	resp := &api.RelayHeartbeatsResponse{Results: make([]*api.RelayedHeartbeatResult, len(errs)), Period: durationpb.New(period)}
	for i, e := range errs {
		res := &api.RelayedHeartbeatResult{}
		if e != nil {
			res.Code, res.Message = int32(errdefs.Code(e)), e.Error()
		}
		resp.Results[i] = res
	}
	return resp, nil
}

// RelayedHeartbeats is what this manager relayed to the leader: the Relay
// calls, and the agents' heartbeats they carried.
func (m *Manager) RelayedHeartbeats() (calls, heartbeats uint64) {
	return m.relay.relays.Load(), m.relay.relayed.Load()
}

// relayToLeader sends a batch of heartbeats to the leader, as this manager.
func (m *Manager) relayToLeader(ctx context.Context, req *api.RelayHeartbeatsRequest) (*api.RelayHeartbeatsResponse, error) {
	const method = "/shoal.v1.HeartbeatRelay/Relay"
	conn, err := m.leaderConn(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := api.NewHeartbeatRelayClient(conn).Relay(ctx, req)
	if err != nil {
		return nil, m.forwardError(ctx, method, errdefs.FromGRPC(err))
	}
	return resp, nil
}

// relayedMethod is the call a follower relays rather than forwards.
const relayedMethod = "/shoal.v1.Dispatcher/Heartbeat"

// relayHeartbeat answers an agent's heartbeat that reached a follower.
func (m *Manager) relayHeartbeat(ctx context.Context, forFor string, req any) (any, error) {
	hb, ok := req.(*api.HeartbeatRequest)
	if !ok {
		return nil, errdefs.Internal("heartbeat request of type %T", req)
	}
	if forFor == "" {
		return nil, errdefs.New(errdefs.ErrUnauthenticated, "no verified node certificate")
	}
	return m.relay.beat(ctx, forFor, hb.GetSessionId())
}
