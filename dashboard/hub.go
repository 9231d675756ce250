package dashboard

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// Change is one store change as the page receives it (an SSE "change"
// event's data): the object's new view, or the old one for a delete.
type Change struct {
	Kind   string `json:"kind"`   // node, service, task
	Action string `json:"action"` // create, update, delete
	Object any    `json:"object"`
}

// sseMsg is one server-sent event, encoded once for every subscriber.
type sseMsg struct {
	event string
	data  []byte
}

// subscriber is one events client: a bounded queue, closed (with gone)
// when the client falls behind or the hub stops.
type subscriber struct {
	c    chan sseMsg
	gone chan struct{}
	once sync.Once
}

func (s *subscriber) cut() { s.once.Do(func() { close(s.gone) }) }

// hub follows the Watch stream and fans each change out to subscribers.
type hub struct {
	watch   api.WatchClient
	buffer  int
	log     *slog.Logger
	minWait time.Duration
	maxWait time.Duration

	mu   sync.Mutex
	subs map[*subscriber]struct{}
	live bool // the watch stream is open
}

func newHub(w api.WatchClient, buffer int, log *slog.Logger) *hub {
	return &hub{watch: w, buffer: buffer, log: log, minWait: 100 * time.Millisecond, maxWait: 5 * time.Second,
		subs: map[*subscriber]struct{}{}}
}

// subscribe adds a client; cancel removes it.
func (h *hub) subscribe() (s *subscriber, cancel func()) {
	s = &subscriber{c: make(chan sseMsg, h.buffer), gone: make(chan struct{})}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s, func() {
		h.mu.Lock()
		delete(h.subs, s)
		h.mu.Unlock()
		s.cut()
	}
}

// publish queues m for every subscriber, cutting off those whose queue is
// full: they reconnect and reload rather than hold the others up.
func (h *hub) publish(m sseMsg) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.c <- m:
		default:
			delete(h.subs, s)
			s.cut()
		}
	}
}

// run follows the Watch stream until ctx ends, reconnecting with a
// bounded, jittered backoff; after each reconnection it tells the pages to
// reload ("resync"), since changes may have been missed. On return every
// subscriber is cut off.
func (h *hub) run(ctx context.Context) {
	defer func() {
		h.mu.Lock()
		for s := range h.subs {
			delete(h.subs, s)
			s.cut()
		}
		h.mu.Unlock()
	}()
	wait := h.minWait
	for {
		start := time.Now()
		err := h.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > h.maxWait {
			wait = h.minWait
		}
		h.log.Debug("dashboard: the watch stream ended; reconnecting", "err", err, "after", wait)
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, h.maxWait)
	}
}

// watchRequest asks for the kinds the page shows, create/update/delete.
func watchRequest() *api.WatchRequest {
	return &api.WatchRequest{Entries: []*api.WatchEntry{{Kind: "node"}, {Kind: "service"}, {Kind: "task"}}}
}

func (h *hub) follow(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := h.watch.Watch(ctx, watchRequest())
	if err != nil {
		return errdefs.FromGRPC(err)
	}
	h.mu.Lock()
	h.live = true
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.live = false
		h.mu.Unlock()
	}()
	// Changes between the pages' last state and this stream's start are
	// unknown: every page reloads its state.
	h.publish(sseMsg{event: "resync", data: []byte("{}")})
	for {
		msg, err := stream.Recv()
		if err != nil {
			return errdefs.FromGRPC(err)
		}
		for _, ev := range msg.GetEvents() {
			c, ok := convert(ev)
			if !ok {
				continue
			}
			data, err := json.Marshal(c)
			if err != nil {
				h.log.Warn("dashboard: encode a change", "err", err)
				continue
			}
			h.publish(sseMsg{event: "change", data: data})
		}
	}
}

// convert turns a watch event into a Change; ok is false for kinds the
// page does not show.
func convert(ev *api.WatchEvent) (Change, bool) {
	var c Change
	switch ev.GetAction() {
	case api.WatchAction_WATCH_ACTION_CREATE:
		c.Action = "create"
	case api.WatchAction_WATCH_ACTION_UPDATE:
		c.Action = "update"
	case api.WatchAction_WATCH_ACTION_DELETE:
		c.Action = "delete"
	default:
		return c, false
	}
	switch o := ev.GetObject().GetObject().(type) {
	case *api.StoreObject_Node:
		c.Kind, c.Object = "node", nodeView(o.Node)
	case *api.StoreObject_Service:
		c.Kind, c.Object = "service", serviceView(o.Service)
	case *api.StoreObject_Task:
		c.Kind, c.Object = "task", taskView(o.Task)
	default:
		return c, false
	}
	return c, true
}
