// Package agenthub is what the log and stats brokers share: the leadership
// term they serve in, and the streams agents keep open to receive requests
// for their node (one per node, the newest winning), each with a bounded
// queue that never blocks the sender.
//
// A Hub is safe for concurrent use. Run marks the leadership term: when it
// ends, every Listen returns Unavailable so agents listen again on the new
// leader.
package agenthub

import (
	"context"
	"sync"

	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/fwdmeta"
)

// Hub holds one broker's listening agents. The zero value is not usable:
// call New.
type Hub[T any] struct {
	what  string // the broker, for errors: "log broker"
	queue int

	mu        sync.Mutex
	term      context.Context // nil when not leading
	listeners map[string]chan *T
}

// New returns a hub whose listeners queue up to queue messages.
func New[T any](what string, queue int) *Hub[T] {
	return &Hub[T]{what: what, queue: queue, listeners: map[string]chan *T{}}
}

// Run marks a leadership term until ctx ends.
func (h *Hub[T]) Run(ctx context.Context) error {
	h.mu.Lock()
	h.term = ctx
	h.mu.Unlock()
	<-ctx.Done()
	h.mu.Lock()
	h.term = nil
	h.mu.Unlock()
	return nil
}

// Term is the current leadership term's context, or Unavailable.
func (h *Hub[T]) Term() (context.Context, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.term == nil {
		return nil, errdefs.Unavailable("%s is not running on this manager (not the leader)", h.what)
	}
	return h.term, nil
}

// AgentID is the node an agent's call is for (forwarded calls name it).
func AgentID(ctx context.Context) (string, error) {
	id, ok := fwdmeta.Caller(ctx)
	if !ok {
		return "", errdefs.New(errdefs.ErrUnauthenticated, "no verified node certificate")
	}
	return id, nil
}

// Listen serves the calling agent's stream: what Offer queues for its node
// is sent, until the stream or the term ends.
func (h *Hub[T]) Listen(stream grpc.ServerStreamingServer[T]) error {
	term, err := h.Term()
	if err != nil {
		return err
	}
	nodeID, err := AgentID(stream.Context())
	if err != nil {
		return err
	}
	c := make(chan *T, h.queue)
	h.mu.Lock()
	h.listeners[nodeID] = c
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		if h.listeners[nodeID] == c {
			delete(h.listeners, nodeID)
		}
		h.mu.Unlock()
	}()
	for {
		select {
		case <-term.Done():
			return errdefs.Unavailable("leadership changed: listen again")
		case <-stream.Context().Done():
			return nil
		case m := <-c:
			if err := stream.Send(m); err != nil {
				return err
			}
		}
	}
}

// Offer queues m for node's agent without waiting: connected is false when
// the node has no stream open, queued false when its queue is full.
func (h *Hub[T]) Offer(node string, m *T) (connected, queued bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.listeners[node]
	if c == nil {
		return false, false
	}
	select {
	case c <- m:
		return true, true
	default:
		return true, false
	}
}

// Listening reports whether node has a stream open.
func (h *Hub[T]) Listening(node string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.listeners[node] != nil
}
