package events

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/moby/moby/api/types/events"
)

// WriteTimeout bounds each write of the stream: a client that reads
// nothing for that long is dropped even when its buffer has room.
const WriteTimeout = time.Minute

// ServeEvents streams the events f keeps as newline-delimited JSON
// (dockerd's GET /events): first those of the ring between since and until,
// then live ones, each flushed at once. It ends when until passes (zero:
// never), ctx ends or the client goes away, and returns nil.
//
// Before writing anything it returns an InvalidArgument error for bad
// filter keys, for the caller to answer 400. A client that falls
// Config.ClientBuffer events behind gets a final message (Type "daemon",
// Action "error", Actor.Attributes["error"] saying so) and then the
// response is aborted with panic(http.ErrAbortHandler), net/http's way to
// make the client see a broken stream rather than a clean end: a recovering
// middleware must let that value through.
func ServeEvents(ctx context.Context, w http.ResponseWriter, r *http.Request, src *Source, filters map[string][]string, since, until time.Time) error {
	f, err := NewFilter(filters)
	if err != nil {
		return err
	}
	from := since // where a cut-off client reconnects when it got no event
	if from.IsZero() {
		from = time.Now()
	}
	sub, replay := src.Subscribe(f, since, until)
	defer sub.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-r.Context().Done():
			cancel()
		case <-ctx.Done():
		}
	}()

	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	last := since // time of the last event sent
	send := func(m events.Message) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(WriteTimeout)) // not every writer has one
		if enc.Encode(m) != nil {
			return false
		}
		last = time.Unix(0, m.TimeNano)
		return send0(rc)
	}
	if !send0(rc) {
		return nil
	}
	for _, m := range replay {
		if !send(m) {
			return nil
		}
	}
	var end <-chan time.Time
	if !until.IsZero() {
		wait := time.Until(until)
		if wait <= 0 {
			return nil
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		end = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-end:
			return nil
		case m := <-sub.C:
			if !send(m) {
				return nil
			}
		case <-sub.Done():
			if err := sub.Err(); err != nil {
				msg := err.Error()
				if !last.IsZero() {
					msg += ": reconnect with since=" + FormatUnix(last) + " to read on after the last event received"
				} else {
					msg += ": reconnect with since=" + FormatUnix(from) + " to read from the start of this stream"
				}
				now := time.Now().UTC()
				send(events.Message{
					Type:     events.DaemonEventType,
					Action:   "error",
					Actor:    events.Actor{ID: "shoal", Attributes: map[string]string{"name": "shoal", "error": msg}},
					Scope:    Scope,
					Time:     now.Unix(),
					TimeNano: now.UnixNano(),
				})
				panic(http.ErrAbortHandler)
			}
			return nil
		}
	}
}

// send0 flushes the headers so that the client knows the stream is open
// before the first event.
func send0(rc *http.ResponseController) bool {
	err := rc.Flush()
	return err == nil || errors.Is(err, http.ErrNotSupported)
}
