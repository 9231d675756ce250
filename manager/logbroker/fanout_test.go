package logbroker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/manager/internal/storetest"
	api "github.com/shoal-project/shoal/proto"
)

// publishStream feeds PublishLogs from a channel; it ends when the channel
// is closed.
type publishStream struct {
	grpc.ServerStream
	ctx context.Context
	in  chan *api.PublishLogsMessage
}

func (p *publishStream) Context() context.Context { return p.ctx }
func (p *publishStream) Recv() (*api.PublishLogsMessage, error) {
	m, ok := <-p.in
	if !ok {
		return nil, io.EOF
	}
	return m, nil
}
func (p *publishStream) SendAndClose(*api.PublishLogsResponse) error { return nil }

type brokerEnv struct {
	t     *testing.T
	clock *clockwork.FakeClock
	b     *Broker
	term  context.CancelFunc
}

// newBrokerEnv leads with a broker over a store holding nodes n1..n3 and
// service web with a task on each, plus one on the removed node n9.
func newBrokerEnv(t *testing.T) *brokerEnv {
	t.Helper()
	clock := clockwork.NewFakeClock()
	store, _ := storetest.New(clock)
	task := func(id, node string) *api.Task {
		return &api.Task{Id: id, ServiceId: "web", NodeId: node, Spec: &api.TaskSpec{}}
	}
	storetest.Seed(t, store, &api.Node{Id: "n1"}, &api.Node{Id: "n2"}, &api.Node{Id: "n3"},
		task("t1", "n1"), task("t2", "n2"), task("t3", "n3"), task("t9", "n9"), task("tp", ""))
	b := New(store, clock, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	storetest.Eventually(t, "the broker leads", func() bool { _, err := b.hub.Term(); return err == nil })
	return &brokerEnv{t: t, clock: clock, b: b, term: cancel}
}

// listen connects node id's agent and returns what it is sent.
func (e *brokerEnv) listen(id string) (*storetest.SendStream[api.SubscriptionMessage], <-chan error) {
	ctx, cancel := context.WithCancel(storetest.Agent(context.Background(), id))
	e.t.Cleanup(cancel)
	s := storetest.NewSendStream[api.SubscriptionMessage](ctx, 10)
	done := make(chan error, 1)
	go func() { done <- e.b.ListenSubscriptions(&api.ListenSubscriptionsRequest{}, s) }()
	storetest.Eventually(e.t, id+" listening", func() bool {
		return e.b.hub.Listening(id)
	})
	return s, done
}

// publish sends one message from node id, then ends its stream.
func (e *brokerEnv) publish(id string, msgs ...*api.PublishLogsMessage) {
	e.t.Helper()
	in := make(chan *api.PublishLogsMessage, len(msgs))
	for _, m := range msgs {
		in <- m
	}
	close(in)
	if err := e.b.PublishLogs(&publishStream{ctx: storetest.Agent(context.Background(), id), in: in}); err != nil {
		e.t.Fatal(err)
	}
}

func lines(sub string, close bool, texts ...string) *api.PublishLogsMessage {
	m := &api.PublishLogsMessage{SubscriptionId: sub, Close: close}
	for _, s := range texts {
		m.Messages = append(m.Messages, &api.LogMessage{Context: &api.LogContext{}, Data: []byte(s)})
	}
	return m
}

// subscribe starts a client's SubscribeLogs for service web.
func (e *brokerEnv) subscribe(follow bool, buffered int) (*storetest.SendStream[api.SubscribeLogsMessage], <-chan error, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	s := storetest.NewSendStream[api.SubscribeLogsMessage](ctx, buffered)
	done := make(chan error, 1)
	go func() {
		done <- e.b.SubscribeLogs(&api.SubscribeLogsRequest{Selector: &api.LogSelector{ServiceIds: []string{"web"}},
			Options: &api.LogSubscriptionOptions{Follow: follow}}, s)
	}()
	return s, done, cancel
}

// collect reads n lines from the client's stream, as "data@node".
func collect(t *testing.T, client *storetest.SendStream[api.SubscribeLogsMessage], n int) string {
	t.Helper()
	var got []string
	for len(got) < n {
		for _, m := range client.Next(t).Messages {
			got = append(got, string(m.Data)+"@"+m.Context.GetNodeId())
		}
	}
	return strings.Join(got, " ")
}

func result(t *testing.T, c <-chan error) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end within 5 s")
		return nil
	}
}

// A subscription goes to every connected node that ran a task; the client
// is warned about the others; lines come back with their node; it ends
// once every node said it is done.
func TestSubscriptionFansOutAndBack(t *testing.T) {
	e := newBrokerEnv(t)
	l1, _ := e.listen("n1")
	l2, _ := e.listen("n2")
	client, done, _ := e.subscribe(false, 100)
	warn := client.Next(t)
	w := strings.Join(warn.Warnings, "\n")
	if !strings.Contains(w, "node n3 is not connected") || !strings.Contains(w, "node n9 of task t9 was removed") || len(warn.Warnings) != 2 {
		t.Fatalf("warnings %q", warn.Warnings)
	}
	sub := l1.Next(t)
	if l2.Next(t).Id != sub.Id || sub.Selector.GetServiceIds()[0] != "web" || sub.Close {
		t.Fatalf("subscription %v", sub)
	}
	e.publish("n1", lines(sub.Id, false, "a", "b"), lines(sub.Id, true))
	if got := collect(t, client, 2); got != "a@n1 b@n1" {
		t.Fatalf("lines %s", got)
	}
	e.publish("n2", lines(sub.Id, true, "c"))
	if got := collect(t, client, 1); got != "c@n2" {
		t.Fatalf("lines %s", got)
	}
	if err := result(t, done); err != nil {
		t.Fatalf("the subscription ended with %v", err)
	}
	// Lines for a subscription that ended are dropped.
	e.publish("n1", lines(sub.Id, false, "late"))
}

// Without follow, a node that never finishes does not hold the client:
// after the deadline it is told which nodes are missing, and those nodes
// are told to stop.
func TestNoFollowDeadlineNamesTheMissingNodes(t *testing.T) {
	e := newBrokerEnv(t)
	l1, _ := e.listen("n1")
	l2, _ := e.listen("n2")
	client, done, _ := e.subscribe(false, 100)
	client.Next(t) // warnings
	sub := l1.Next(t)
	l2.Next(t)
	e.publish("n1", lines(sub.Id, true))
	storetest.BlockUntil(t, e.clock, 1)
	e.clock.Advance(NoFollowDeadline)
	m := client.Next(t)
	if len(m.Warnings) != 1 || !strings.Contains(m.Warnings[0], "nodes [n2] did not finish") {
		t.Fatalf("warnings %q", m.Warnings)
	}
	if err := result(t, done); err != nil {
		t.Fatal(err)
	}
	if m := l2.Next(t); m.Id != sub.Id || !m.Close {
		t.Fatalf("the unfinished node was not told to stop: %v", m)
	}
}

// A client that cannot keep up is cut off with a clear error instead of
// buffering without bound.
func TestASlowClientIsCutOff(t *testing.T) {
	e := newBrokerEnv(t)
	l1, _ := e.listen("n1")
	client, done, _ := e.subscribe(true, 0) // each Send waits for the test
	client.Next(t)                          // warnings
	sub := l1.Next(t)
	// More than the queue and what one blocked send holds.
	texts := make([]string, 2*subscriberQueue)
	for i := range texts {
		texts[i] = "x"
	}
	e.publish("n1", lines(sub.Id, false, texts...))
	var err error
	for err == nil {
		select {
		case <-client.Sent:
		case err = <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the slow client was not cut off")
		}
	}
	if !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Fatalf("%v, want resource exhausted", err)
	}
}

// A lost leadership ends listeners and subscribers, which retry on the next
// leader; calls outside a term are refused.
func TestLeadershipEndsStreams(t *testing.T) {
	e := newBrokerEnv(t)
	l1, listening := e.listen("n1")
	_, subscribed, _ := e.subscribe(true, 100)
	l1.Next(t) // the subscription is live
	e.term()
	if err := result(t, listening); !errdefs.IsUnavailable(err) {
		t.Fatalf("listener: %v", err)
	}
	if err := result(t, subscribed); !errdefs.IsUnavailable(err) {
		t.Fatalf("subscriber: %v", err)
	}
	storetest.Eventually(t, "the term ended", func() bool { _, err := e.b.hub.Term(); return err != nil })
	s := storetest.NewSendStream[api.SubscribeLogsMessage](context.Background(), 0)
	if err := e.b.SubscribeLogs(&api.SubscribeLogsRequest{}, s); !errdefs.IsUnavailable(err) {
		t.Fatalf("subscribe outside a term: %v", err)
	}
}

// Calls without a node certificate and empty selectors are refused.
func TestBrokerRefusals(t *testing.T) {
	e := newBrokerEnv(t)
	err := e.b.PublishLogs(&publishStream{ctx: context.Background(), in: make(chan *api.PublishLogsMessage)})
	if !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Fatalf("publish without identity: %v", err)
	}
	s := storetest.NewSendStream[api.SubscriptionMessage](context.Background(), 0)
	if err := e.b.ListenSubscriptions(&api.ListenSubscriptionsRequest{}, s); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Fatalf("listen without identity: %v", err)
	}
	c := storetest.NewSendStream[api.SubscribeLogsMessage](context.Background(), 0)
	if err := e.b.SubscribeLogs(&api.SubscribeLogsRequest{Selector: &api.LogSelector{}}, c); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("empty selector: %v", err)
	}
}
