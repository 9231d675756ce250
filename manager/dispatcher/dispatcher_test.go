package dispatcher

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/manager/internal/storetest"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

type nodeKey struct{}

// as is a call context of node id (what Identify reads), from addr.
func as(ctx context.Context, id string) context.Context {
	ctx = context.WithValue(ctx, nodeKey{}, id)
	return peer.NewContext(ctx, &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 4242}})
}

func identify(ctx context.Context) (string, error) {
	if id, ok := ctx.Value(nodeKey{}).(string); ok {
		return id, nil
	}
	return "", errdefs.PermissionDenied("no identity")
}

// stream records what a server stream sends, on a channel.
type stream[T any] struct {
	grpc.ServerStream
	ctx  context.Context
	sent chan T
}

func newStream[T any](ctx context.Context) *stream[T] {
	return &stream[T]{ctx: ctx, sent: make(chan T, 100)}
}

func (s *stream[T]) Context() context.Context { return s.ctx }
func (s *stream[T]) Send(m T) error           { s.sent <- m; return nil }

func (s *stream[T]) next(t *testing.T) T {
	t.Helper()
	select {
	case m := <-s.sent:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("nothing sent within 5 s")
		var zero T
		return zero
	}
}

type env struct {
	t        *testing.T
	managers *atomic.Pointer[[]*api.WeightedPeer] // what Config.Managers answers
	clock    *clockwork.FakeClock
	store    *raftstore.Store
	prop     *storetest.Proposer
	d        *Dispatcher
	ctx      context.Context
	logs     *testutil.LogBuffer // what the dispatcher logged
	// periodHook, when set, runs in each call of Config.Period (which
	// reads the store in a manager).
	periodHook *atomic.Pointer[func()]
}

const period = time.Second

// newEnv runs a dispatcher (heartbeat 1 s, down after 3) over a store
// seeded with objs.
func newEnv(t *testing.T, objs ...raftstore.Object) *env {
	t.Helper()
	clock := clockwork.NewFakeClock()
	store, prop := storetest.New(clock)
	if len(objs) > 0 {
		storetest.Seed(t, store, objs...)
	}
	managers := &atomic.Pointer[[]*api.WeightedPeer]{}
	managers.Store(&[]*api.WeightedPeer{{Peer: &api.Peer{NodeId: "m1", Addr: "10.0.0.1:4242"}, Weight: 1}})
	logs := &testutil.LogBuffer{}
	hook := &atomic.Pointer[func()]{}
	d, err := New(store, Config{HeartbeatPeriod: period, Identify: identify, Clock: clock,
		Period: func() time.Duration {
			if h := hook.Load(); h != nil {
				(*h)()
			}
			return period
		},
		Logger:   slog.New(slog.NewTextHandler(logs, nil)),
		Managers: func() []*api.WeightedPeer { return *managers.Load() },
		RootCA:   []byte("root")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-d.started
	return &env{t: t, managers: managers, clock: clock, store: store, prop: prop, d: d, ctx: ctx, logs: logs, periodHook: hook}
}

func readyNode(id string) *api.Node {
	return &api.Node{Id: id, Spec: &api.NodeSpec{Annotations: &api.Annotations{Name: id}}, Status: &api.NodeStatus{State: api.NodeStatus_UNKNOWN}}
}

func (e *env) node(id string) *api.Node {
	var n *api.Node
	e.store.View(func(tx raftstore.ReadTx) { n = tx.Node(id) })
	return n
}

// open opens node id's session and returns its first message and the
// session's end.
func (e *env) open(id string) (*api.SessionMessage, *stream[*api.SessionMessage], <-chan error, context.CancelFunc) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(as(context.Background(), id))
	e.t.Cleanup(cancel)
	s := newStream[*api.SessionMessage](ctx)
	ended := make(chan error, 1)
	go func() {
		ended <- e.d.Session(&api.SessionRequest{Description: &api.NodeDescription{Hostname: id + ".local", LocalSubnet: "10.213.7.0/24"}}, s)
	}()
	return s.next(e.t), s, ended, cancel
}

func ended(t *testing.T, c <-chan error) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("the session did not end within 5 s")
		return nil
	}
}

// A session marks the node READY with its description and address and
// tells the agent its session, node, managers and root CA; heartbeats on
// it are answered with the period; a session ID that is not the node's
// live one is refused.
func TestSessionAndHeartbeat(t *testing.T) {
	e := newEnv(t, readyNode("n1"))
	msg, _, _, _ := e.open("n1")
	if msg.SessionId == "" || msg.Node.GetId() != "n1" || len(msg.Managers) != 1 || string(msg.RootCa) != "root" {
		t.Fatalf("session message %v", msg)
	}
	n := e.node("n1")
	if n.Status.State != api.NodeStatus_READY || n.Status.Addr != "10.0.0.7" || n.Description.GetHostname() != "n1.local" ||
		n.LocalSubnet != "10.213.7.0/24" { // overlay subnets may not overlap it (allocator)
		t.Fatalf("node after its session opened: %v", n)
	}
	resp, err := e.d.Heartbeat(as(context.Background(), "n1"), &api.HeartbeatRequest{SessionId: msg.SessionId})
	if err != nil || resp.Period.AsDuration() != period {
		t.Fatalf("heartbeat: %v %v", resp, err)
	}
	if _, err := e.d.Heartbeat(as(context.Background(), "n1"), &api.HeartbeatRequest{SessionId: "stale"}); !errdefs.IsNotFound(err) {
		t.Fatalf("stale session: %v", err)
	}
	if _, err := e.d.Heartbeat(context.Background(), &api.HeartbeatRequest{SessionId: msg.SessionId}); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("no identity: %v", err)
	}
}

// Heartbeats relayed by another manager in one batch: each gets its own
// verdict, and the accepted ones keep their nodes alive as direct ones do.
func TestRelayedHeartbeats(t *testing.T) {
	e := newEnv(t, readyNode("relayed"), readyNode("quiet"))
	r, _, _, _ := e.open("relayed")
	q, _, qEnded, _ := e.open("quiet")
	beats := []*api.RelayedHeartbeat{
		{NodeId: "relayed", SessionId: r.SessionId},
		{NodeId: "relayed", SessionId: "stale"},
		{NodeId: "quiet", SessionId: r.SessionId}, // another node's session
		{NodeId: "", SessionId: q.SessionId},
		{NodeId: "ghost", SessionId: "x"},
	}
	before := e.d.cfg.Metrics.Heartbeats()
	errs, p, err := e.d.RelayedHeartbeats(beats)
	if err != nil || p != period || len(errs) != len(beats) {
		t.Fatalf("RelayedHeartbeats: %v, period %v, %d verdicts", err, p, len(errs))
	}
	if errs[0] != nil {
		t.Fatalf("a valid relayed heartbeat: %v", errs[0])
	}
	for i, e := range errs[1:] {
		if !errdefs.IsNotFound(e) {
			t.Errorf("beat %d (%v): %v, want not found", i+1, beats[i+1], e)
		}
	}
	if got := e.d.cfg.Metrics.Heartbeats() - before; got != 1 {
		t.Errorf("heartbeats counted: %d, want 1 (the accepted one)", got)
	}
	// Past DownAfter and the new leader's storm window (stormSessionGap
	// periods after the last session): only relayed heartbeats keep
	// "relayed" alive.
	for i := 0; i < 3+stormSessionGap; i++ {
		if errs, _, err := e.d.RelayedHeartbeats(beats[:1]); err != nil || errs[0] != nil {
			t.Fatalf("relayed heartbeat %d: %v %v", i, err, errs)
		}
		e.clock.Advance(period)
	}
	storetest.Eventually(t, "quiet marked down", func() bool { return e.node("quiet").Status.State == api.NodeStatus_DOWN })
	if err := ended(t, qEnded); !errdefs.IsUnavailable(err) {
		t.Fatalf("the silent node's session ended with %v", err)
	}
	if s := e.node("relayed").Status.State; s != api.NodeStatus_READY {
		t.Fatalf("a node heartbeating through a relay is %v", s)
	}
}

// newEnvWithSessions runs a dispatcher with n nodes ("n0", "n1"...), each
// with a session open, and returns a function that heartbeats nodes.
func newEnvWithSessions(t *testing.T, n int) (*env, func(ids ...string)) {
	t.Helper()
	var nodes []raftstore.Object
	for i := range n {
		nodes = append(nodes, readyNode(fmt.Sprintf("n%d", i)))
	}
	e := newEnv(t, nodes...)
	sessions := map[string]string{}
	for i := range n {
		msg, _, _, _ := e.open(fmt.Sprintf("n%d", i))
		sessions[msg.Node.Id] = msg.SessionId
	}
	return e, func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			if _, err := e.d.Heartbeat(as(context.Background(), id), &api.HeartbeatRequest{SessionId: sessions[id]}); err != nil {
				t.Fatalf("heartbeat of %s: %v", id, err)
			}
		}
	}
}

// When most nodes miss their heartbeats at once, they are held rather than
// marked down (a failover's reconnect storm, not a dying cluster); a held
// node that comes back was never down, and the rest go down once the hold
// runs out.
func TestMassDownIsHeld(t *testing.T) {
	e, beat := newEnvWithSessions(t, 12)
	down := func() []string {
		var ids []string
		for i := range 12 {
			if id := fmt.Sprintf("n%d", i); e.node(id).GetStatus().GetState() == api.NodeStatus_DOWN {
				ids = append(ids, id)
			}
		}
		return ids
	}
	for range 5 { // 10 of 12 nodes fall silent together
		beat("n0", "n1")
		e.clock.Advance(period)
	}
	storetest.Eventually(t, "the silent nodes held", func() bool { return e.d.cfg.Metrics.Held() >= 10 })
	if got := down(); len(got) != 0 {
		t.Fatalf("nodes marked down while most of the cluster was silent at once: %v", got)
	}
	// n2 comes back; the others stay silent past the hold.
	for elapsed := time.Duration(0); elapsed < DefaultMassDownHold+10*period; elapsed += period {
		beat("n0", "n1", "n2")
		e.clock.Advance(period)
	}
	storetest.Eventually(t, "the nodes still silent marked down after the hold", func() bool { return len(down()) == 9 })
	for _, id := range []string{"n0", "n1", "n2"} {
		if st := e.node(id).GetStatus().GetState(); st != api.NodeStatus_READY {
			t.Fatalf("%s heartbeats and is %v (down: %v)", id, st, down())
		}
	}
	// Counted once their write has returned, just after the store shows it.
	storetest.Eventually(t, "the 9 silent nodes counted down", func() bool { return e.d.cfg.Metrics.Expired() == 9 })
}

// Nodes that fall silent together come due one check after another, as
// their last heartbeats were spread over a period: they are held all the
// same (the mass test counts the silent nodes, not those due in one check).
func TestSpreadMassDownIsHeld(t *testing.T) {
	e, beat := newEnvWithSessions(t, 12)
	for i := range 12 { // the nodes' last heartbeats, spread over a period
		beat(fmt.Sprintf("n%d", i))
		e.clock.Advance(period / 12)
	}
	for range 20 { // 5 periods: n2..n11 silent, coming due a few at a time
		beat("n0", "n1")
		e.clock.Advance(period / 4)
		time.Sleep(time.Millisecond) // let the dispatcher's check run at each step
	}
	storetest.Eventually(t, "the silent nodes held", func() bool { return e.d.cfg.Metrics.Held() >= 10 })
	for i := range 12 {
		if id := fmt.Sprintf("n%d", i); e.node(id).GetStatus().GetState() == api.NodeStatus_DOWN {
			t.Fatalf("%s marked down while 10 of 12 nodes fell silent together", id)
		}
	}
}

// Every node silent when a mass silence is seen is held, not only those
// due then: when some of the silent come back at once, the silent are no
// longer most, and the rest, coming due in the next checks, went down.
func TestAllSilentNodesAreHeldWhenAMassSilenceIsSeen(t *testing.T) {
	const nodes = 20
	e, beat := newEnvWithSessions(t, nodes)
	alive := []string{"n0", "n1", "n2", "n3"}
	// n4..n19 beat last one after another over a period, then fall silent.
	for i := 4; i < nodes; i++ {
		beat(append(alive, fmt.Sprintf("n%d", i))...)
		e.clock.Advance(period / 16)
		time.Sleep(time.Millisecond)
	}
	// Until the first of them is due: 16 of 20 silent, a mass silence.
	for e.d.cfg.Metrics.Held() == 0 {
		beat(alive...)
		e.clock.Advance(period / 8)
		time.Sleep(2 * time.Millisecond)
	}
	// n12..n19 come back at once (they were not due yet): 8 stay
	// silent, fewer than MassDownMin. n5..n11 come due over the next
	// period.
	back := append(slices.Clone(alive), "n12", "n13", "n14", "n15", "n16", "n17", "n18", "n19")
	for range 16 {
		beat(back...)
		e.clock.Advance(period / 4)
		time.Sleep(2 * time.Millisecond)
	}
	for i := range nodes {
		if id := fmt.Sprintf("n%d", i); e.node(id).GetStatus().GetState() == api.NodeStatus_DOWN {
			t.Fatalf("%s marked down: it fell silent with most of the cluster", id)
		}
	}
}

// Held nodes come due again at every check when they fell silent at
// different moments; the hold is logged at most once a period all the same
// (one 1M failover logged it four times a second, 1,528 lines).
func TestMassHoldIsLoggedOncePerPeriod(t *testing.T) {
	const nodes = 40
	e, beat := newEnvWithSessions(t, nodes)
	for step := range 12 { // last heartbeats spread over 3 periods
		ids := []string{"n0", "n1"}
		for i := 2; i < nodes; i++ {
			if i%12 == step {
				ids = append(ids, fmt.Sprintf("n%d", i))
			}
		}
		beat(ids...)
		e.clock.Advance(period / 4)
		time.Sleep(time.Millisecond)
	}
	for range 60 { // 15 periods, checked 4 times each
		beat("n0", "n1")
		e.clock.Advance(period / 4)
		time.Sleep(time.Millisecond)
	}
	storetest.Eventually(t, "the silent nodes held", func() bool { return e.d.cfg.Metrics.Held() >= nodes-2 })
	if n := e.logs.Count("most nodes missed their heartbeats at once"); n == 0 || n > 16 {
		t.Fatalf("the mass hold logged %d times in 15 periods", n)
	}
}

// After a leader change, a node not yet reconnected when its grace ends, or
// one that reconnected and fell silent again, is held while sessions still
// arrive, however few nodes are silent (it is queued behind the others);
// once sessions stop arriving, those still silent go down.
func TestSilentNodesHeldWhileReconnectionsArrive(t *testing.T) {
	var nodes []raftstore.Object
	for i := range 12 {
		nodes = append(nodes, readyNode(fmt.Sprintf("n%d", i)))
	}
	e := newEnv(t, nodes...)
	grace := e.d.cfg.LeaderGrace
	sessions := map[string]string{}
	open := func(id string) {
		msg, _, _, _ := e.open(id)
		sessions[id] = msg.SessionId
	}
	quiet := map[string]bool{}
	beat := func() {
		for id, sid := range sessions {
			if quiet[id] {
				continue
			}
			if _, err := e.d.Heartbeat(as(context.Background(), id), &api.HeartbeatRequest{SessionId: sid}); err != nil {
				t.Fatalf("heartbeat of %s: %v", id, err)
			}
		}
	}
	for i := range 8 { // two thirds are back before the grace ends
		open(fmt.Sprintf("n%d", i))
	}
	down := func() (ids []string) {
		for i := range 12 {
			if id := fmt.Sprintf("n%d", i); e.node(id).GetStatus().GetState() == api.NodeStatus_DOWN {
				ids = append(ids, id)
			}
		}
		return ids
	}
	// From the grace's last period on, one more node comes back every
	// three periods (a straggler's retry: a session deadline plus a
	// backoff of up to two periods): n8..n10.
	for elapsed := period; elapsed < grace; elapsed += period {
		beat()
		e.clock.Advance(period)
	}
	quiet["n0"] = true // its session breaks: it is due in the storm
	for i := 8; i <= 10; i++ {
		open(fmt.Sprintf("n%d", i))
		for range 3 {
			beat()
			e.clock.Advance(period)
			time.Sleep(time.Millisecond) // let the dispatcher's check run at each step
			if got := down(); len(got) != 0 {
				t.Fatalf("%v marked down while nodes were still reconnecting to the new leader", got)
			}
		}
	}
	// No more sessions: n0 and n11, still silent, go down within a few
	// periods.
	for range stormSessionGap + 2 {
		beat()
		e.clock.Advance(period)
		time.Sleep(time.Millisecond)
	}
	storetest.Eventually(t, "n0 and n11 marked down once reconnections stopped", func() bool {
		return slices.Equal(down(), []string{"n0", "n11"})
	})
}

// A held node stays held when most of the others come back: after a
// failover the nodes return over a minute or more, and the last of them
// are as much part of the storm as the first. Once the hold runs out, those
// still silent go down.
func TestHeldNodesStayHeldAsOthersReturn(t *testing.T) {
	e, beat := newEnvWithSessions(t, 12)
	for range 5 { // 10 of 12 nodes fall silent together
		beat("n0", "n1")
		e.clock.Advance(period)
	}
	storetest.Eventually(t, "the silent nodes held", func() bool { return e.d.cfg.Metrics.Held() >= 10 })
	// Eight of the ten come back: two of twelve silent is no mass silence.
	back := []string{"n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9"}
	for elapsed := time.Duration(0); elapsed < DefaultMassDownHold/2; elapsed += period {
		beat(back...)
		e.clock.Advance(period)
		time.Sleep(time.Millisecond) // let the dispatcher's check run at each step
	}
	for _, id := range []string{"n10", "n11"} {
		if st := e.node(id).GetStatus().GetState(); st == api.NodeStatus_DOWN {
			t.Fatalf("%s, held with the others, was marked down once they came back", id)
		}
	}
	for elapsed := time.Duration(0); elapsed < DefaultMassDownHold/2+5*period; elapsed += period {
		beat(back...)
		e.clock.Advance(period)
	}
	storetest.Eventually(t, "the two still silent marked down after the hold", func() bool {
		return e.node("n10").GetStatus().GetState() == api.NodeStatus_DOWN && e.node("n11").GetStatus().GetState() == api.NodeStatus_DOWN
	})
	storetest.Eventually(t, "the 2 silent nodes counted down", func() bool { return e.d.cfg.Metrics.Expired() == 2 })
}

// A node the store does not know gets no session.
func TestSessionOfAnUnknownNode(t *testing.T) {
	e := newEnv(t)
	err := e.d.Session(&api.SessionRequest{}, newStream[*api.SessionMessage](as(context.Background(), "ghost")))
	if !errdefs.IsNotFound(err) {
		t.Fatalf("%v, want not found", err)
	}
}

// A second session of a node replaces the first, which ends.
func TestANewSessionReplacesTheOld(t *testing.T) {
	e := newEnv(t, readyNode("n1"))
	first, _, firstEnded, _ := e.open("n1")
	second, _, _, _ := e.open("n1")
	if err := ended(t, firstEnded); !errdefs.IsUnavailable(err) {
		t.Fatalf("the first session ended with %v", err)
	}
	if _, err := e.d.Heartbeat(as(context.Background(), "n1"), &api.HeartbeatRequest{SessionId: first.SessionId}); !errdefs.IsNotFound(err) {
		t.Fatalf("heartbeat on the replaced session: %v", err)
	}
	if _, err := e.d.Heartbeat(as(context.Background(), "n1"), &api.HeartbeatRequest{SessionId: second.SessionId}); err != nil {
		t.Fatal(err)
	}
}

// A node that stops heartbeating is marked DOWN after DownAfter periods
// and its session ends; one that heartbeats stays up. Nodes known when the
// dispatcher starts get the leader grace period instead.
func TestMissedHeartbeatsMarkTheNodeDown(t *testing.T) {
	e := newEnv(t, readyNode("quiet"), readyNode("alive"), readyNode("absent"))
	q, _, qEnded, _ := e.open("quiet")
	a, _, _, _ := e.open("alive")
	_ = q
	beatFor := func(periods int) {
		for range periods {
			if _, err := e.d.Heartbeat(as(context.Background(), "alive"), &api.HeartbeatRequest{SessionId: a.SessionId}); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(period)
		}
	}
	beatFor(4) // more than DownAfter (3) periods
	// "absent" never connected: its grace is 2 x 3 periods from start.
	time.Sleep(time.Millisecond)
	if s := e.node("absent").Status.State; s == api.NodeStatus_DOWN {
		t.Fatal("a node known at start was marked down within the leader grace")
	}
	// Past the new leader's storm window too (stormSessionGap periods
	// since the last session), and past the grace.
	beatFor(3)
	storetest.Eventually(t, "quiet marked down", func() bool { return e.node("quiet").Status.State == api.NodeStatus_DOWN })
	if msg := e.node("quiet").Status.Message; msg != "heartbeat failure" {
		t.Fatalf("message %q", msg)
	}
	if err := ended(t, qEnded); !errdefs.IsUnavailable(err) {
		t.Fatalf("the silent node's session ended with %v", err)
	}
	if s := e.node("alive").Status.State; s != api.NodeStatus_READY {
		t.Fatalf("a heartbeating node is %v", s)
	}
	storetest.Eventually(t, "absent marked down after the grace", func() bool { return e.node("absent").Status.State == api.NodeStatus_DOWN })
}

// Nodes that come due together are marked down in shared transactions
// (they were written one raft round at a time, the dispatcher's loop
// stopped meanwhile); only marks that committed count, and one that
// failed is tried again a period later.
func TestDownMarksShareWritesAndOnlyCommittedOnesCount(t *testing.T) {
	const n, silent = 40, 15
	e, beat := newEnvWithSessions(t, n)
	var alive []string
	for i := silent; i < n; i++ {
		alive = append(alive, fmt.Sprintf("n%d", i))
	}
	isDown := func(tx *api.Transaction) bool {
		for _, o := range storetest.Objects(tx) {
			if nd, ok := o.(*api.Node); ok && nd.GetStatus().GetState() == api.NodeStatus_DOWN {
				return true
			}
		}
		return false
	}
	var refused atomic.Int32
	e.prop.Refuse(func(tx *api.Transaction) error {
		if isDown(tx) {
			refused.Add(1)
			return errdefs.Unavailable("injected: no quorum")
		}
		return nil
	})
	for range 3 + stormSessionGap { // n0..n14 silent past DownAfter and the storm window
		beat(alive...)
		e.clock.Advance(period)
		time.Sleep(time.Millisecond)
	}
	storetest.Eventually(t, "the refused marks", func() bool { return refused.Load() > 0 })
	if got := e.d.cfg.Metrics.Expired(); got != 0 {
		t.Fatalf("%d nodes counted down, none committed", got)
	}
	if st := e.node("n0").GetStatus().GetState(); st == api.NodeStatus_DOWN {
		t.Fatal("n0 down though its write was refused")
	}
	e.prop.Refuse(nil)
	for i := 0; e.d.cfg.Metrics.Expired() != silent; i++ { // the retry, a period on
		if i == 50 {
			t.Fatalf("%d of the %d silent nodes marked down after the retry's period", e.d.cfg.Metrics.Expired(), silent)
		}
		beat(alive...)
		e.clock.Advance(period / 5)
		time.Sleep(5 * time.Millisecond)
	}
	writes := 0
	for _, tx := range e.prop.Transactions() {
		if isDown(tx) {
			writes++
		}
	}
	if writes != 1 {
		t.Fatalf("%d transactions marked the %d silent nodes down, want 1", writes, silent)
	}
	for i := range n {
		id := fmt.Sprintf("n%d", i)
		if down := e.node(id).GetStatus().GetState() == api.NodeStatus_DOWN; down != (i < silent) {
			t.Fatalf("%s down: %v", id, down)
		}
	}
}

// A dispatcher whose context ended (its manager lost the leadership) marks
// no node down, however long its nodes are silent: that is the next
// leader's call.
func TestNoDownMarksAfterLeadershipEnds(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store, _ := storetest.New(clock)
	storetest.Seed(t, store, readyNode("n1"))
	d, err := New(store, Config{HeartbeatPeriod: period, Identify: identify, Clock: clock,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Managers: func() []*api.WeightedPeer { return nil }, RootCA: []byte("root")})
	if err != nil {
		t.Fatal(err)
	}
	d.expiry["n1"] = clock.Now()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	clock.Advance(time.Hour)
	d.expire(ctx)
	var st api.NodeStatus_State
	store.View(func(tx raftstore.ReadTx) { st = tx.Node("n1").GetStatus().GetState() })
	if st == api.NodeStatus_DOWN || d.cfg.Metrics.Expired() != 0 {
		t.Fatalf("a deposed dispatcher marked n1 %v (%d counted)", st, d.cfg.Metrics.Expired())
	}
}

// The session tells the agent when its node's spec or role changes, at
// once: sessions poll nothing (the clock does not move here).
func TestSessionSendsNodeChanges(t *testing.T) {
	e := newEnv(t, readyNode("n1"))
	_, s, _, _ := e.open("n1")
	err := e.store.Update(context.Background(), func(tx *raftstore.Tx) error {
		n := proto.Clone(tx.Node("n1")).(*api.Node)
		n.Spec.Availability = api.Availability_DRAIN
		return tx.Update(n)
	})
	if err != nil {
		t.Fatal(err)
	}
	if msg := s.next(t); msg.Node.GetSpec().GetAvailability() != api.Availability_DRAIN {
		t.Fatalf("session message %v", msg)
	}
	// A status write (the agent's own heartbeat-borne changes) tells it
	// nothing new: no message.
	err = e.store.Update(context.Background(), func(tx *raftstore.Tx) error {
		n := proto.Clone(tx.Node("n1")).(*api.Node)
		n.Status = &api.NodeStatus{State: api.NodeStatus_READY, Message: "still here", Addr: n.GetStatus().GetAddr()}
		return tx.Update(n)
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-s.sent:
		t.Fatalf("a status write sent %v", msg)
	case <-time.After(200 * time.Millisecond):
	}
}

// A change of the manager list reaches every session, through one check of
// the list by the dispatcher (its expiry tick), not one per session.
func TestSessionsHearOfNewManagers(t *testing.T) {
	e := newEnv(t, readyNode("n1"), readyNode("n2"))
	_, s1, _, _ := e.open("n1")
	_, s2, _, _ := e.open("n2")
	e.managers.Store(&[]*api.WeightedPeer{
		{Peer: &api.Peer{NodeId: "m1", Addr: "10.0.0.1:4242"}, Weight: 1},
		{Peer: &api.Peer{NodeId: "m2", Addr: "10.0.0.2:4242"}, Weight: 1},
	})
	storetest.BlockUntil(t, e.clock, 1) // the dispatcher's tick only: sessions have no timer
	e.clock.Advance(period)
	for _, s := range []*stream[*api.SessionMessage]{s1, s2} {
		if msg := s.next(t); len(msg.GetManagers()) != 2 {
			t.Fatalf("session message %v", msg)
		}
	}
}

// commitStatus runs UpdateTaskStatus, moving the clock over the batch
// window until it returns.
func (e *env) commitStatus(node, session string, updates ...*api.TaskStatusUpdate) error {
	e.t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := e.d.UpdateTaskStatus(as(context.Background(), node), &api.UpdateTaskStatusRequest{SessionId: session, Updates: updates})
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		select {
		case err := <-done:
			return err
		case <-time.After(time.Millisecond):
			if time.Now().After(deadline) {
				e.t.Fatal("UpdateTaskStatus did not return within 5 s")
			}
			e.clock.Advance(batchWindow)
		}
	}
}

func taskOn(id, node string, state api.TaskState) *api.Task {
	return &api.Task{Id: id, ServiceId: "svc", NodeId: node, Status: &api.TaskStatus{State: state}, DesiredState: api.TaskState_RUNNING,
		Spec: &api.TaskSpec{Container: &api.ContainerSpec{Image: "busybox"}}}
}

func (e *env) task(id string) *api.Task { return storetest.Task(e.store, id) }

// Status reports are committed for the caller's own tasks only, and only
// forward; a report without a time gets the dispatcher's clock.
func TestTaskStatusUpdates(t *testing.T) {
	e := newEnv(t, readyNode("n1"), readyNode("n2"),
		taskOn("t1", "n1", api.TaskState_ASSIGNED), taskOn("t2", "n2", api.TaskState_ASSIGNED), taskOn("t3", "n1", api.TaskState_RUNNING))
	msg, _, _, _ := e.open("n1")
	err := e.commitStatus("n1", msg.SessionId,
		&api.TaskStatusUpdate{TaskId: "t1", Status: &api.TaskStatus{State: api.TaskState_RUNNING, Message: "started"}},
		&api.TaskStatusUpdate{TaskId: "t2", Status: &api.TaskStatus{State: api.TaskState_FAILED}},
		&api.TaskStatusUpdate{TaskId: "t3", Status: &api.TaskStatus{State: api.TaskState_PREPARING}},
		&api.TaskStatusUpdate{TaskId: "gone", Status: &api.TaskStatus{State: api.TaskState_RUNNING}})
	if err != nil {
		t.Fatal(err)
	}
	if s := e.task("t1").Status; s.State != api.TaskState_RUNNING || s.Message != "started" || s.Timestamp == nil {
		t.Fatalf("t1 %v", s)
	}
	if s := e.task("t2").Status.State; s != api.TaskState_ASSIGNED {
		t.Fatalf("n1 reported n2's task: t2 is %v", s)
	}
	if s := e.task("t3").Status.State; s != api.TaskState_RUNNING {
		t.Fatalf("a backwards report moved t3 to %v", s)
	}
	if err := e.commitStatus("n1", msg.SessionId, &api.TaskStatusUpdate{TaskId: "t1"}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("a report without a status: %v", err)
	}
	if err := e.commitStatus("n1", "stale", &api.TaskStatusUpdate{TaskId: "t1", Status: &api.TaskStatus{State: api.TaskState_COMPLETE}}); !errdefs.IsNotFound(err) {
		t.Fatalf("a report on a stale session: %v", err)
	}
}

// A failing store write reaches the agent, which keeps its report.
func TestTaskStatusWriteFailureIsReturned(t *testing.T) {
	e := newEnv(t, readyNode("n1"), taskOn("t1", "n1", api.TaskState_ASSIGNED))
	msg, _, _, _ := e.open("n1")
	e.prop.Refuse(func(*api.Transaction) error { return errdefs.Unavailable("injected: no quorum") })
	err := e.commitStatus("n1", msg.SessionId, &api.TaskStatusUpdate{TaskId: "t1", Status: &api.TaskStatus{State: api.TaskState_RUNNING}})
	if !errdefs.IsUnavailable(err) {
		t.Fatalf("%v, want the write's error", err)
	}
}

// Assignments: the node's placed tasks as a full set, then changes the
// agent acts on (new tasks, desired state, removal), not its own status
// reports.
func TestAssignments(t *testing.T) {
	e := newEnv(t, readyNode("n1"), readyNode("n2"),
		taskOn("t1", "n1", api.TaskState_ASSIGNED), taskOn("t2", "n2", api.TaskState_ASSIGNED), taskOn("p", "", api.TaskState_PENDING))
	msg, _, _, _ := e.open("n1")
	ctx, cancel := context.WithCancel(as(context.Background(), "n1"))
	defer cancel()
	s := newStream[*api.AssignmentsMessage](ctx)
	done := make(chan error, 1)
	go func() { done <- e.d.Assignments(&api.AssignmentsRequest{SessionId: msg.SessionId}, s) }()
	full := s.next(t)
	if full.Type != api.AssignmentsMessage_COMPLETE || len(full.Changes) != 1 || full.Changes[0].Assignment.GetTask().GetId() != "t1" {
		t.Fatalf("full set %v", full)
	}
	update := func(id string, fn func(*api.Task)) {
		t.Helper()
		err := e.store.Update(context.Background(), func(tx *raftstore.Tx) error {
			c := proto.Clone(tx.Task(id)).(*api.Task)
			fn(c)
			return tx.Update(c)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The agent's own report: nothing to send. Then a placement.
	update("t1", func(c *api.Task) { c.Status = &api.TaskStatus{State: api.TaskState_RUNNING} })
	update("p", func(c *api.Task) { c.NodeId, c.Status = "n1", &api.TaskStatus{State: api.TaskState_ASSIGNED} })
	m := s.next(t)
	if m.Type != api.AssignmentsMessage_INCREMENTAL || len(m.Changes) != 1 || m.Changes[0].Assignment.GetTask().GetId() != "p" ||
		m.Changes[0].Action != api.AssignmentChange_UPDATE {
		t.Fatalf("after a placement: %v", m)
	}
	update("t1", func(c *api.Task) { c.DesiredState = api.TaskState_SHUTDOWN })
	if m := s.next(t); len(m.Changes) != 1 || m.Changes[0].Assignment.GetTask().GetDesiredState() != api.TaskState_SHUTDOWN {
		t.Fatalf("after a desired state change: %v", m)
	}
	if err := e.store.Update(context.Background(), func(tx *raftstore.Tx) error { return tx.Delete(tx.Task("t1")) }); err != nil {
		t.Fatal(err)
	}
	if m := s.next(t); len(m.Changes) != 1 || m.Changes[0].Action != api.AssignmentChange_REMOVE || m.Changes[0].Assignment.GetTask().GetId() != "t1" {
		t.Fatalf("after a removal: %v", m)
	}
	// Another node's task changing sends nothing; the stream ends with its
	// caller.
	update("t2", func(c *api.Task) { c.DesiredState = api.TaskState_SHUTDOWN })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Assignments ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Assignments did not end with its caller")
	}
	select {
	case m := <-s.sent:
		t.Fatalf("sent %v for another node's task", m)
	default:
	}
}

// Calls before Run starts, or after it ended, are refused as unavailable.
func TestNotServingOutsideRun(t *testing.T) {
	store, _ := storetest.New(nil)
	d, err := New(store, Config{Identify: identify})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Heartbeat(as(context.Background(), "n1"), &api.HeartbeatRequest{}); !errdefs.IsUnavailable(err) {
		t.Fatalf("before Run: %v", err)
	}
	if _, err := New(store, Config{}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("no Identify: %v", err)
	}
}

// The heartbeat period is read from the store (the cluster's setting),
// whose lock an apply holds while it hands its events to the watchers: a
// path that read it under the dispatcher's lock would hold every other
// node's heartbeat and relay behind that wait. The period is read before
// the lock is taken: while one reader waits for it, the lock is free and
// other nodes' heartbeats go through.
func TestReadingThePeriodHoldsNoLock(t *testing.T) {
	e, _ := newEnvWithSessions(t, 2)
	e.d.mu.Lock()
	sid0, sid := e.d.sessions["n0"].id, e.d.sessions["n1"].id
	e.d.mu.Unlock()
	var blocked atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	hook := func() {
		if blocked.CompareAndSwap(false, true) {
			close(entered)
			<-release
		}
	}
	e.periodHook.Store(&hook)
	done := make(chan error, 1)
	go func() {
		_, err := e.d.Heartbeat(as(context.Background(), "n0"), &api.HeartbeatRequest{SessionId: sid0})
		done <- err
	}()
	<-entered
	if !e.d.mu.TryLock() {
		t.Fatal("the dispatcher's lock is held while the heartbeat period is read from the store")
	}
	e.d.mu.Unlock()
	errs, _, err := e.d.RelayedHeartbeats([]*api.RelayedHeartbeat{{NodeId: "n1", SessionId: sid}})
	if err != nil || errs[0] != nil {
		t.Fatalf("another node's relayed heartbeat while the period is read: %v %v", err, errs)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
