// Package logbroker fans `service logs` out to the nodes that ran the tasks
// and back: a client's SubscribeLogs becomes a subscription sent to each
// involved node's ListenSubscriptions stream; the nodes publish lines with
// PublishLogs, which the broker relays to the client.
//
// Nothing waits forever: a subscription without follow ends when every
// involved node has said it is done or after a deadline, and the client is
// told which nodes did not answer (a node that is down or gone is named at
// once). Queues are bounded; a client that cannot keep up is cut off.
//
// Broker is safe for concurrent use. Run marks the leadership term: it ends
// listener streams when the manager stops leading, so agents re-listen on
// the new leader.
package logbroker

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/ids"
	"github.com/shoal-project/shoal/internal/logopt"
	"github.com/shoal-project/shoal/manager/internal/agenthub"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Limits.
const (
	// NoFollowDeadline bounds a subscription without follow.
	NoFollowDeadline = 15 * time.Second
	subscriberQueue  = 1024
	listenerQueue    = 64
)

// Broker is the log broker of one manager.
type Broker struct {
	api.UnimplementedLogsServer
	api.UnimplementedLogBrokerServer
	store *raftstore.Store
	clock clockwork.Clock
	log   *slog.Logger

	hub *agenthub.Hub[api.SubscriptionMessage]

	mu   sync.Mutex
	subs map[string]*subscription // by subscription ID
}

type subscription struct {
	msg     *api.SubscriptionMessage
	nodes   map[string]bool // nodes still expected to send close
	out     chan *api.LogMessage
	done    chan struct{} // closed when every node finished
	once    sync.Once
	cut     chan struct{}
	cutOnce sync.Once
}

// New returns a broker over the store.
func New(store *raftstore.Store, clock clockwork.Clock, log *slog.Logger) *Broker {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	if log == nil {
		log = slog.Default()
	}
	return &Broker{store: store, clock: clock, log: log.With("component", "logbroker"),
		hub: agenthub.New[api.SubscriptionMessage]("log broker", listenerQueue), subs: map[string]*subscription{}}
}

// Run marks a leadership term until ctx ends.
func (b *Broker) Run(ctx context.Context) error { return b.hub.Run(ctx) }

// ListenSubscriptions is an agent's stream of subscriptions for its node.
func (b *Broker) ListenSubscriptions(_ *api.ListenSubscriptionsRequest, stream grpc.ServerStreamingServer[api.SubscriptionMessage]) error {
	return b.hub.Listen(stream)
}

// PublishLogs receives the lines one node sends for subscriptions.
func (b *Broker) PublishLogs(stream grpc.ClientStreamingServer[api.PublishLogsMessage, api.PublishLogsResponse]) error {
	nodeID, err := agenthub.AgentID(stream.Context())
	if err != nil {
		return err
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			return stream.SendAndClose(&api.PublishLogsResponse{})
		}
		b.mu.Lock()
		s := b.subs[m.GetSubscriptionId()]
		b.mu.Unlock()
		if s == nil {
			continue // the client went away
		}
		for _, line := range m.GetMessages() {
			if line.GetContext().GetNodeId() == "" {
				line.Context.NodeId = nodeID
			}
			select {
			case s.out <- line:
			default:
				s.cutOnce.Do(func() { close(s.cut) })
			}
		}
		if m.GetClose() {
			b.mu.Lock()
			delete(s.nodes, nodeID)
			finished := len(s.nodes) == 0
			b.mu.Unlock()
			if finished {
				s.once.Do(func() { close(s.done) })
			}
		}
	}
}

// SubscribeLogs serves a client's `service logs`.
func (b *Broker) SubscribeLogs(req *api.SubscribeLogsRequest, stream grpc.ServerStreamingServer[api.SubscribeLogsMessage]) error {
	term, err := b.hub.Term()
	if err != nil {
		return err
	}
	sel := req.GetSelector()
	nodes, warnings, err := b.involvedNodes(sel)
	if err != nil {
		return err
	}
	s := &subscription{
		msg:   &api.SubscriptionMessage{Id: ids.New(), Selector: sel, Options: req.GetOptions()},
		nodes: map[string]bool{},
		out:   make(chan *api.LogMessage, subscriberQueue),
		done:  make(chan struct{}),
		cut:   make(chan struct{}),
	}
	b.mu.Lock()
	for _, n := range nodes {
		switch connected, queued := b.hub.Offer(n, s.msg); {
		case !connected:
			warnings = append(warnings, fmt.Sprintf("node %s is not connected to the swarm; logs of its tasks are missing", n))
		case !queued:
			warnings = append(warnings, fmt.Sprintf("node %s is too busy to serve logs now; its lines are missing", n))
		default:
			s.nodes[n] = true
		}
	}
	b.subs[s.msg.Id] = s
	if len(s.nodes) == 0 {
		s.once.Do(func() { close(s.done) })
	}
	b.mu.Unlock()
	defer b.finish(s)
	if len(warnings) > 0 {
		if err := stream.Send(&api.SubscribeLogsMessage{Warnings: warnings}); err != nil {
			return err
		}
	}
	var deadline <-chan time.Time
	if !req.GetOptions().GetFollow() {
		deadline = b.clock.After(NoFollowDeadline)
	}
	for {
		select {
		case line := <-s.out:
			if err := stream.Send(&api.SubscribeLogsMessage{Messages: b.drain(line, s.out)}); err != nil {
				return err
			}
		case <-s.done:
			// Send what is left, then end.
			for {
				select {
				case line := <-s.out:
					if err := stream.Send(&api.SubscribeLogsMessage{Messages: b.drain(line, s.out)}); err != nil {
						return err
					}
				default:
					return nil
				}
			}
		case <-s.cut:
			return errdefs.New(errdefs.ErrResourceExhausted, "log output arrived faster than it could be sent; use --tail or --since to ask for less")
		case <-deadline:
			b.mu.Lock()
			var missing []string
			for n := range s.nodes {
				missing = append(missing, n)
			}
			b.mu.Unlock()
			sort.Strings(missing)
			return stream.Send(&api.SubscribeLogsMessage{Warnings: []string{fmt.Sprintf("nodes %v did not finish sending logs within %v; output may be incomplete", missing, NoFollowDeadline)}})
		case <-term.Done():
			return errdefs.Unavailable("leadership changed while streaming logs; run the command again")
		case <-stream.Context().Done():
			return nil
		}
	}
}

// drain batches lines that are already waiting.
func (b *Broker) drain(first *api.LogMessage, c chan *api.LogMessage) []*api.LogMessage {
	out := []*api.LogMessage{first}
	for len(out) < 256 {
		select {
		case l := <-c:
			out = append(out, l)
		default:
			return out
		}
	}
	return out
}

// finish tells the nodes to stop and forgets the subscription.
func (b *Broker) finish(s *subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.subs, s.msg.Id)
	closeMsg := proto.Clone(s.msg).(*api.SubscriptionMessage)
	closeMsg.Close = true
	for n := range s.nodes {
		b.hub.Offer(n, closeMsg) // best effort: a full queue ends with its stream
	}
}

// ErrLogsDisabled answers a subscription whose tasks all have the log
// driver none, in Docker's words.
var ErrLogsDisabled = errdefs.FailedPrecondition("configured logging driver does not support reading")

// involvedNodes finds the nodes that hold logs for the selector, and warns
// about tasks whose node is down or gone. Tasks whose log driver is none
// keep no logs: their nodes are not asked; when they are all the selector
// names, the answer is ErrLogsDisabled, as Docker's.
func (b *Broker) involvedNodes(sel *api.LogSelector) ([]string, []string, error) {
	if len(sel.GetServiceIds())+len(sel.GetTaskIds())+len(sel.GetNodeIds()) == 0 {
		return nil, nil, errdefs.InvalidArgument("log selector is empty: name a service, task or node")
	}
	set := map[string]bool{}
	var warnings []string
	readable, disabled, disabledServices := 0, 0, 0
	b.store.View(func(tx raftstore.ReadTx) {
		var tasks []*api.Task
		for _, id := range sel.GetServiceIds() {
			st := tx.TasksByService(id)
			if len(st) == 0 {
				if svc := tx.Service(id); svc != nil && svc.GetSpec().GetTask().GetLogDriver().GetName() == logopt.None {
					disabledServices++
				}
			}
			tasks = append(tasks, st...)
		}
		for _, id := range sel.GetTaskIds() {
			if t := tx.Task(id); t != nil {
				tasks = append(tasks, t)
			}
		}
		for _, id := range sel.GetNodeIds() {
			set[id] = true
		}
		for _, t := range tasks {
			if t.GetSpec().GetLogDriver().GetName() == logopt.None {
				disabled++
				continue
			}
			readable++
			if t.NodeId == "" {
				continue
			}
			n := tx.Node(t.NodeId)
			if n == nil {
				warnings = append(warnings, fmt.Sprintf("node %s of task %s was removed; its logs are missing", t.NodeId, t.Id))
				continue
			}
			set[t.NodeId] = true
		}
	})
	if readable == 0 && disabled+disabledServices > 0 && len(sel.GetNodeIds()) == 0 {
		return nil, nil, ErrLogsDisabled
	}
	if disabled > 0 {
		warnings = append(warnings, fmt.Sprintf("%d tasks keep no logs: %s", disabled, ErrLogsDisabled))
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, dedupe(warnings), nil
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
