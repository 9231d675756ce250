package dockerapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/dockerapi/events"
	"github.com/shoal-project/shoal/dockerapi/filters"
	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

func (s *Server) eventRoutes() {
	s.handle("GET /events", s.eventStream, stream)
}

// eventStream answers GET /events?since=&until=&filters= with the node's
// event stream (package events): newline-delimited JSON until `until`, the
// client goes away or the server stops. A slow client cut off by the Source
// ends with panic(http.ErrAbortHandler), which net/http handles; nothing on
// the way recovers it.
func (s *Server) eventStream(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	if s.events == nil {
		return errdefs.Unavailable("the event stream is not running on this node: events come from the manager's watch stream")
	}
	q := r.URL.Query()
	f, err := filters.Parse(q.Get("filters"), events.FilterKeys...)
	if err != nil {
		return err
	}
	now := time.Now()
	since, err := events.ParseTime("since", q.Get("since"), now)
	if err != nil {
		return badRequest("%v", err)
	}
	until, err := events.ParseTime("until", q.Get("until"), now)
	if err != nil {
		return badRequest("%v", err)
	}
	if !since.IsZero() && !until.IsZero() && until.Before(since) {
		return badRequest("since (%s) must be before until (%s)", q.Get("since"), q.Get("until"))
	}
	return events.ServeEvents(ctx, w, r, s.events, f, since, until)
}

// quietHandler logs everything at debug level: the Source retries its
// watch stream forever, which on a worker (no manager to watch from this
// node's control socket until it is promoted) is normal, not news.
type quietHandler struct{ slog.Handler }

func (h quietHandler) Enabled(ctx context.Context, _ slog.Level) bool {
	return h.Handler.Enabled(ctx, slog.LevelDebug)
}

func (h quietHandler) Handle(ctx context.Context, rec slog.Record) error {
	rec.Level = slog.LevelDebug
	return h.Handler.Handle(ctx, rec)
}

func (h quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(as)}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name)}
}

// managerPoll is how often the event source's watcher checks whether this
// node has become a manager (promotion, a join made with the shoal CLI).
const managerPoll = time.Second

// managerWatcher is the Source's Watcher: it calls the manager's Watch only
// once this node serves the control API, and otherwise waits (polling the
// node, or woken by a swarm init or join through this gateway), so that a
// worker makes no failing calls and a fresh manager's first changes are
// seen: the Source's own backoff (up to seconds) is never on that path.
type managerWatcher struct {
	watch events.Watcher
	local api.LocalNodeClient
	kick  chan struct{} // buffered 1: wake a waiting Watch now
}

func (m *managerWatcher) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *managerWatcher) Watch(ctx context.Context, in *api.WatchRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[api.WatchMessage], error) {
	t := time.NewTicker(managerPoll)
	defer t.Stop()
	for {
		ictx, cancel := context.WithTimeout(ctx, managerPoll)
		info, err := m.local.Info(ictx, &api.InfoRequest{})
		cancel()
		if err == nil && info.GetControlAvailable() {
			return m.watch.Watch(ctx, in, opts...)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-m.kick:
		case <-t.C:
		}
	}
}

// wakeEvents tells the event source's watcher that this node may have just
// become a manager (swarm init, join, unlock).
func (s *Server) wakeEvents() {
	if s.watcher != nil {
		s.watcher.wake()
	}
}
