package events

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/moby/moby/api/types/events"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// Watcher is the part of api.WatchClient a Source uses.
type Watcher interface {
	Watch(ctx context.Context, in *api.WatchRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[api.WatchMessage], error)
}

// Config configures a Source. Zero values take the defaults.
type Config struct {
	// Watch is the manager's Watch service (required), e.g.
	// api.NewWatchClient on the node's control connection.
	Watch Watcher
	// RingSize is the number of recent events kept for `since` (default
	// 1,024).
	RingSize int
	// ClientBuffer is the number of messages a subscriber may fall behind
	// before it is cut off (default 4,096, as the store's own watchers:
	// one transaction of a large scale-up makes thousands of task events).
	ClientBuffer int
	// MinBackoff and MaxBackoff bound the wait before reconnecting to the
	// Watch stream (default 100ms and 5s; doubled on each failure in a
	// row, with jitter).
	MinBackoff, MaxBackoff time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives reconnections (default discarded).
	Logger *slog.Logger
}

func (c *Config) validate() error {
	if c.Watch == nil {
		return errors.New("events: Config.Watch is nil: give the manager's Watch client")
	}
	if c.RingSize <= 0 {
		c.RingSize = 1024
	}
	if c.ClientBuffer <= 0 {
		c.ClientBuffer = 4096
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(5*time.Second, c.MinBackoff)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// watchKinds are the kinds a Source asks for.
var watchKinds = []string{"node", "service", "task", "network", "secret", "config"}

// WatchRequest is the Watch call that feeds events: every kind that makes
// one, with the old objects.
func WatchRequest() *api.WatchRequest {
	req := &api.WatchRequest{IncludeOldObject: true}
	for _, k := range watchKinds {
		req.Entries = append(req.Entries, &api.WatchEntry{Kind: k})
	}
	return req
}

// Source follows the manager's Watch stream and fans events out to
// subscribers, keeping a ring of the recent ones.
type Source struct {
	cfg Config

	mu   sync.Mutex
	ring []Event // circular; len(ring) <= cfg.RingSize
	next int     // where the next event goes once the ring is full
	subs map[*Subscription]struct{}
}

// New makes a Source; Run makes it follow the Watch stream.
func New(cfg Config) (*Source, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Source{cfg: cfg, subs: map[*Subscription]struct{}{}}, nil
}

// Run follows the Watch stream until ctx ends, reconnecting after errors
// with a bounded backoff. It returns ctx's error.
func (s *Source) Run(ctx context.Context) error {
	backoff := s.cfg.MinBackoff
	for {
		start := s.cfg.Now()
		err := s.follow(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if s.cfg.Now().Sub(start) > s.cfg.MaxBackoff {
			backoff = s.cfg.MinBackoff // it ran a while: a fresh failure
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		level := slog.LevelInfo
		if backoff > s.cfg.MinBackoff {
			level = slog.LevelDebug // said once per run of failures
		}
		s.cfg.Logger.Log(ctx, level, "events: the manager's watch stream ended; reconnecting", "error", err, "after", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

// follow reads one Watch stream until it fails or ctx ends.
func (s *Source) follow(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.cfg.Watch.Watch(ctx, WatchRequest())
	if err != nil {
		return errdefs.FromGRPC(err)
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return errdefs.FromGRPC(err)
		}
		now := s.cfg.Now()
		for _, we := range msg.GetEvents() {
			if ev, ok := Convert(we, now); ok {
				s.Publish(ev)
			}
		}
	}
}

// Publish adds an event to the ring and hands it to every subscriber whose
// filter keeps it. A subscriber whose buffer is full is cut off.
func (s *Source) Publish(ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ring) < s.cfg.RingSize {
		s.ring = append(s.ring, ev)
	} else {
		s.ring[s.next] = ev
		s.next = (s.next + 1) % len(s.ring)
	}
	for sub := range s.subs {
		if !sub.wants(ev) {
			continue
		}
		select {
		case sub.ch <- ev.Msg:
		default:
			delete(s.subs, sub)
			sub.cut(errdefs.Newf(ErrCutOff, "events: this client read too slowly: %d events were waiting for it (the limit); the stream was cut off",
				cap(sub.ch)))
		}
	}
}

// ErrCutOff is the class of a subscription's end when its reader fell
// behind.
var ErrCutOff = errdefs.ErrResourceExhausted

// Subscription is one reader of the live events.
type Subscription struct {
	// C delivers the matching events in order. It is never closed: select
	// on Done too.
	C <-chan events.Message

	ch     chan events.Message
	src    *Source
	filter Filter
	since  time.Time
	until  time.Time

	once sync.Once
	done chan struct{}
	err  error
}

func (sub *Subscription) wants(ev Event) bool {
	t := time.Unix(0, ev.Msg.TimeNano)
	if t.Before(sub.since) || !sub.until.IsZero() && t.After(sub.until) {
		return false
	}
	if !sub.filter.Match(ev) {
		return false
	}
	return true
}

func (sub *Subscription) cut(err error) {
	sub.once.Do(func() {
		sub.err = err
		close(sub.done)
	})
}

// Done is closed when the subscription ends: Close, or cut off.
func (sub *Subscription) Done() <-chan struct{} { return sub.done }

// Err says why the subscription ended; nil while it runs or after Close.
func (sub *Subscription) Err() error {
	select {
	case <-sub.done:
		return sub.err
	default:
		return nil
	}
}

// Close ends the subscription. It may be called more than once.
func (sub *Subscription) Close() {
	sub.src.mu.Lock()
	delete(sub.src.subs, sub)
	sub.src.mu.Unlock()
	sub.once.Do(func() { close(sub.done) })
}

// Subscribe starts a subscription to the live events that f keeps and
// returns with it the events of the ring between since and until (as
// dockerd: none when both are zero; all up to until when only since is).
// Live events after until are not delivered.
func (s *Source) Subscribe(f Filter, since, until time.Time) (*Subscription, []events.Message) {
	ch := make(chan events.Message, s.cfg.ClientBuffer)
	sub := &Subscription{C: ch, ch: ch, src: s, filter: f, since: since, until: until, done: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	var replay []events.Message
	if !since.IsZero() || !until.IsZero() {
		n := len(s.ring)
		for i := 0; i < n; i++ {
			ev := s.ring[(s.next+i)%n]
			t := time.Unix(0, ev.Msg.TimeNano)
			if t.Before(since) || !until.IsZero() && t.After(until) || !f.Match(ev) {
				continue
			}
			replay = append(replay, ev.Msg)
		}
	}
	s.subs[sub] = struct{}{}
	return sub, replay
}
