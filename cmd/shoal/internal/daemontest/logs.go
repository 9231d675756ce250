package daemontest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
)

// The log agents stand for the workers' side of `service logs`: one per
// node in LogNodes listens to the real broker for subscriptions over the
// daemon's socket and publishes the lines of LogLines that its node holds
// and the selector asks for, then closes. Lines go out one at a time in
// LogLines order, each acknowledged by the broker before the next, so the
// CLI prints them in that order whatever node they come from.

// agentKey is the metadata key naming the node an agent's call is from
// (the test's stand-in for its certificate).
const agentKey = "shoal-test-node"

// probeKey marks the daemon's own readiness probe, which is not recorded.
const probeKey = "shoal-test-probe"

// agentStream gives a LogBroker stream the identity its metadata names.
type agentStream struct{ grpc.ServerStream }

func (s *agentStream) Context() context.Context {
	ctx := s.ServerStream.Context()
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(agentKey); len(v) == 1 {
		return pki.ContextWithIdentity(ctx, pki.Identity{NodeID: v[0], Role: api.NodeRole_WORKER})
	}
	return ctx
}

type logAgents struct {
	d    *Daemon
	ctx  context.Context
	conn *grpc.ClientConn
	wg   sync.WaitGroup

	mu   sync.Mutex
	subs map[string]*agentSub // by subscription ID
}

// agentSub is one subscription as the agents see it.
type agentSub struct {
	msg       *api.SubscriptionMessage
	got       map[string]chan struct{} // closed when that node's agent has it
	linesDone chan struct{}            // closed when every line went out
}

func startLogAgents(ctx context.Context, d *Daemon) *logAgents {
	return &logAgents{d: d, ctx: ctx, subs: map[string]*agentSub{}}
}

// wait returns once every agent goroutine has ended (ctx is cancelled).
func (a *logAgents) wait() {
	a.wg.Wait()
	if a.conn != nil {
		_ = a.conn.Close()
	}
}

// ServeLogs connects a log agent for each of nodes (once per daemon) and
// makes them publish lines, in order, for the subscriptions that ask for
// them. It returns once the broker has every agent listening.
func (d *Daemon) ServeLogs(nodes []string, lines ...*api.LogMessage) error {
	setLines := func() {
		d.Mu.Lock()
		d.logLines = append([]*api.LogMessage(nil), lines...)
		d.Mu.Unlock()
	}
	d.Mu.Lock()
	started := d.logNodes != nil
	if !started {
		d.logNodes = append([]string(nil), nodes...)
	}
	d.Mu.Unlock()
	if started {
		setLines()
		return nil
	}
	a := d.logs
	conn, err := grpc.NewClient(d.Host(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	a.conn = conn
	for _, n := range nodes {
		a.wg.Add(1)
		go func() { defer a.wg.Done(); a.listen(n) }()
	}
	if err := a.probe(nodes); err != nil {
		return err
	}
	setLines()
	return nil
}

func (a *logAgents) as(node string) context.Context {
	return metadata.AppendToOutgoingContext(a.ctx, agentKey, node)
}

// listen is one node's agent: it listens again whenever its stream ends,
// until the daemon stops.
func (a *logAgents) listen(node string) {
	client := api.NewLogBrokerClient(a.conn)
	for a.ctx.Err() == nil {
		stream, err := client.ListenSubscriptions(a.as(node), &api.ListenSubscriptionsRequest{})
		if err == nil {
			for {
				m, err := stream.Recv()
				if err != nil {
					break
				}
				if !m.GetClose() {
					a.arrived(node, m)
				}
			}
		}
		select { // the broker is not leading yet, or went away
		case <-a.ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// sub returns the subscription m names, starting its publisher when new.
func (a *logAgents) sub(m *api.SubscriptionMessage) *agentSub {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.subs[m.GetId()]
	if s == nil {
		s = &agentSub{msg: m, got: map[string]chan struct{}{}, linesDone: make(chan struct{})}
		a.subs[m.GetId()] = s
		a.wg.Add(1)
		go func() { defer a.wg.Done(); a.publishLines(s) }()
	}
	return s
}

func (a *logAgents) gotChan(s *agentSub, node string) chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := s.got[node]
	if c == nil {
		c = make(chan struct{})
		s.got[node] = c
	}
	return c
}

// arrived: node's agent has subscription m. Once every line went out, it
// says it is done.
func (a *logAgents) arrived(node string, m *api.SubscriptionMessage) {
	s := a.sub(m)
	close(a.gotChan(s, node))
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		select {
		case <-s.linesDone:
			_ = a.publish(node, &api.PublishLogsMessage{SubscriptionId: m.GetId(), Close: true})
		case <-a.ctx.Done():
		}
	}()
}

// publishLines sends the lines s asks for, each by its node's agent once
// that agent has the subscription.
func (a *logAgents) publishLines(s *agentSub) {
	defer close(s.linesDone)
	a.d.Mu.Lock()
	lines, nodes := a.d.logLines, a.d.logNodes
	a.d.Mu.Unlock()
	sel := s.msg.GetSelector()
	for _, l := range lines {
		c := l.GetContext()
		if !slices.Contains(nodes, c.GetNodeId()) ||
			!slices.Contains(sel.GetServiceIds(), c.GetServiceId()) && !slices.Contains(sel.GetTaskIds(), c.GetTaskId()) && !slices.Contains(sel.GetNodeIds(), c.GetNodeId()) {
			continue
		}
		select {
		case <-a.gotChan(s, c.GetNodeId()):
		case <-a.ctx.Done():
			return
		case <-time.After(deadline):
			continue // the broker did not ask this node: the line is not sent
		}
		_ = a.publish(c.GetNodeId(), &api.PublishLogsMessage{SubscriptionId: s.msg.GetId(), Messages: []*api.LogMessage{proto.Clone(l).(*api.LogMessage)}})
	}
}

// publish sends one message as node and waits for the broker to take it.
func (a *logAgents) publish(node string, m *api.PublishLogsMessage) error {
	stream, err := api.NewLogBrokerClient(a.conn).PublishLogs(a.as(node))
	if err != nil {
		return err
	}
	if err := stream.Send(m); err != nil {
		return err
	}
	_, err = stream.CloseAndRecv()
	return err
}

// probe returns once the broker counts every agent as connected: a
// subscription to all their nodes comes back without a warning.
func (a *logAgents) probe(nodes []string) error {
	client := api.NewLogsClient(a.conn)
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(a.ctx, probeKey, "1"), deadline)
	defer cancel()
	for {
		stream, err := client.SubscribeLogs(ctx, &api.SubscribeLogsRequest{Selector: &api.LogSelector{NodeIds: nodes}})
		if err != nil {
			return err
		}
		var warnings []string
		for {
			m, err := stream.Recv()
			if err != nil {
				break
			}
			warnings = append(warnings, m.GetWarnings()...)
		}
		if len(warnings) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), fmt.Errorf("log agents not connected: %v", warnings))
		case <-time.After(5 * time.Millisecond):
		}
	}
}
