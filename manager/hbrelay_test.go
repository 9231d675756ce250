package manager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// fakeLeader answers relayed batches: sessions "ok-*" are valid.
type fakeLeader struct {
	mu      sync.Mutex
	batches [][]*api.RelayedHeartbeat
	fail    error
	short   bool // answer one result too few
}

func (l *fakeLeader) relay(ctx context.Context, req *api.RelayHeartbeatsRequest) (*api.RelayHeartbeatsResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.batches = append(l.batches, req.Beats)
	if l.fail != nil {
		return nil, l.fail
	}
	resp := &api.RelayHeartbeatsResponse{Period: durationpb.New(7 * time.Second)}
	for _, b := range req.Beats {
		r := &api.RelayedHeartbeatResult{}
		if b.SessionId[:3] != "ok-" {
			r.Code, r.Message = int32(codes.NotFound), "session invalid: open a new session"
		}
		resp.Results = append(resp.Results, r)
	}
	if l.short {
		resp.Results = resp.Results[1:]
	}
	return resp, nil
}

func (l *fakeLeader) sizes() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n []int
	for _, b := range l.batches {
		n = append(n, len(b))
	}
	return n
}

type beatResult struct {
	node string
	resp *api.HeartbeatResponse
	err  error
}

// beatAll sends one heartbeat per session at once and waits until all of
// them wait in the relay.
func beatAll(t *testing.T, r *heartbeatRelay, clock *clockwork.FakeClock, sessions map[string]string) chan beatResult {
	t.Helper()
	out := make(chan beatResult, len(sessions))
	for node, sid := range sessions {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := r.beat(ctx, node, sid)
			out <- beatResult{node, resp, err}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		n := len(r.pending)
		r.mu.Unlock()
		if n == len(sessions) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	return out
}

// A window's heartbeats go to the leader in one call, and each agent gets
// its own verdict and the leader's period.
func TestRelayBatchesAWindow(t *testing.T) {
	clock := clockwork.NewFakeClock()
	l := &fakeLeader{}
	r := newHeartbeatRelay(l.relay, clock, slog.New(slog.DiscardHandler))
	defer r.stop()
	out := beatAll(t, r, clock, map[string]string{"n1": "ok-1", "n2": "ok-2", "n3": "stale"})
	if got := l.sizes(); len(got) != 0 {
		t.Fatalf("relayed before the window ended: %v", got)
	}
	if err := clock.BlockUntilContext(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(relayWindow)
	for range 3 {
		res := <-out
		switch res.node {
		case "n3":
			if !errdefs.IsNotFound(res.err) {
				t.Errorf("stale session: %v, want not found", res.err)
			}
		default:
			if res.err != nil || res.resp.GetPeriod().AsDuration() != 7*time.Second {
				t.Errorf("%s: %v %v", res.node, res.resp, res.err)
			}
		}
	}
	if got := l.sizes(); fmt.Sprint(got) != "[3]" {
		t.Fatalf("batches %v, want one of 3", got)
	}
	if r.relays.Load() != 1 || r.relayed.Load() != 3 {
		t.Fatalf("counters: %d relays, %d heartbeats", r.relays.Load(), r.relayed.Load())
	}
}

// A failed relay fails each heartbeat of its batch with the reason, and a
// leader that answers the wrong number of results is an error, not a
// guess about which result is whose.
func TestRelayFailures(t *testing.T) {
	for _, c := range []struct {
		name  string
		l     *fakeLeader
		check func(error) bool
	}{
		{"leader unavailable", &fakeLeader{fail: errdefs.Unavailable("no leader")}, errdefs.IsUnavailable},
		{"short answer", &fakeLeader{short: true}, errdefs.IsInternal},
	} {
		t.Run(c.name, func(t *testing.T) {
			clock := clockwork.NewFakeClock()
			r := newHeartbeatRelay(c.l.relay, clock, slog.New(slog.DiscardHandler))
			defer r.stop()
			out := beatAll(t, r, clock, map[string]string{"n1": "ok-1", "n2": "ok-2"})
			if err := clock.BlockUntilContext(context.Background(), 1); err != nil {
				t.Fatal(err)
			}
			clock.Advance(relayWindow)
			for range 2 {
				if res := <-out; !c.check(res.err) {
					t.Errorf("%s: %v", res.node, res.err)
				}
			}
		})
	}
}

// A full window goes at once, without waiting for the timer; a stopped
// relay refuses new heartbeats and fails the waiting ones.
func TestRelayFullWindowAndStop(t *testing.T) {
	clock := clockwork.NewFakeClock()
	l := &fakeLeader{}
	r := newHeartbeatRelay(l.relay, clock, slog.New(slog.DiscardHandler))
	sessions := map[string]string{}
	for i := range maxRelayBatch {
		sessions[fmt.Sprintf("n%d", i)] = fmt.Sprintf("ok-%d", i)
	}
	out := make(chan beatResult, len(sessions))
	for node, sid := range sessions {
		go func() {
			resp, err := r.beat(context.Background(), node, sid)
			out <- beatResult{node, resp, err}
		}()
	}
	for range maxRelayBatch { // the clock never moves: only the full batch can answer
		if res := <-out; res.err != nil {
			t.Fatalf("%s: %v", res.node, res.err)
		}
	}
	if got := l.sizes(); fmt.Sprint(got) != fmt.Sprintf("[%d]", maxRelayBatch) {
		t.Fatalf("batches %v", got)
	}

	late := beatAll(t, r, clock, map[string]string{"late": "ok-x"})
	done := make(chan struct{})
	go func() { r.stop(); close(done) }()
	for stopped := false; !stopped; time.Sleep(time.Millisecond) {
		r.mu.Lock()
		stopped = r.stopped
		r.mu.Unlock()
	}
	// The waiting heartbeat's window still ends: stop waits for it.
	clock.Advance(relayWindow)
	<-done
	if res := <-late; res.err == nil {
		t.Fatal("a heartbeat pending at stop was answered as accepted")
	}
	if _, err := r.beat(context.Background(), "after", "ok-y"); !errdefs.IsUnavailable(err) {
		t.Fatalf("heartbeat after stop: %v", err)
	}
}

// Slow relays are counted in the histogram and logged at most once every
// relaySlowLogEvery, each line with what came since the last.
func TestSlowRelaysAreLoggedAndCounted(t *testing.T) {
	clock := clockwork.NewFakeClock()
	var logs bytes.Buffer // observe is called from one goroutine here
	r := newHeartbeatRelay((&fakeLeader{}).relay, clock, slog.New(slog.NewTextHandler(&logs, nil)))
	defer r.stop()
	lines := func() int { return strings.Count(logs.String(), "relaying agents' heartbeats to the leader is slow") }
	r.observe(20*time.Millisecond, 100, nil) // not slow
	if lines() != 0 {
		t.Fatalf("a 20 ms relay logged: %s", logs.String())
	}
	r.observe(1500*time.Millisecond, 300, nil)
	if lines() != 1 || !strings.Contains(logs.String(), "slow_calls=1 heartbeats=300 longest=1.5s") {
		t.Fatalf("the first slow relay: %s", logs.String())
	}
	for i := range 5 {
		clock.Advance(time.Second)
		r.observe(time.Duration(2+i)*time.Second, 200, errors.New("deadline exceeded"))
	}
	if lines() != 1 {
		t.Fatalf("%d lines within %v", lines(), relaySlowLogEvery)
	}
	clock.Advance(relaySlowLogEvery)
	r.observe(1200*time.Millisecond, 50, nil)
	if lines() != 2 || !strings.Contains(logs.String(), "slow_calls=6 heartbeats=1050 longest=6s failed=5") {
		t.Fatalf("the second line should sum the six slow relays since the first: %s", logs.String())
	}
	h := r.latency.Snapshot()
	if h.Count != 8 || h.Buckets[0.025] != 1 || h.Buckets[1] != 1 || h.Buckets[2.5] != 4 {
		t.Fatalf("histogram %+v", h)
	}
}
