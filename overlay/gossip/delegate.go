package gossip

import (
	"bytes"
	"context"
	"log"
	"log/slog"

	"github.com/hashicorp/memberlist"
)

// delegate is memberlist's Delegate. memberlist calls it from its own
// goroutines, sometimes under its locks: it only takes g.mu briefly and
// never calls memberlist while holding it.
type delegate Gossip

func (d *delegate) NodeMeta(int) []byte { return nil }

func (d *delegate) NotifyMsg(b []byte) {
	g := (*Gossip)(d)
	if len(b) > 0 && b[0] == msgBatch {
		// Sent to every member directly: no re-broadcast.
		d.merge(b)
		return
	}
	e, err := decodeEntry(b)
	if err != nil {
		g.log.Debug("gossip: bad message ignored", "err", err)
		return
	}
	g.mu.Lock()
	f := g.t.apply(e, g.cfg.Clock.Now(), true)
	g.mu.Unlock()
	g.do(f)
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return (*Gossip)(d).q.GetBroadcasts(overhead, limit)
}

func (d *delegate) LocalState(bool) []byte {
	g := (*Gossip)(d)
	g.mu.Lock()
	b, left := encodeState(g.t.all(), g.cfg.MaxStateBytes)
	g.mu.Unlock()
	if left > 0 {
		g.log.Warn("gossip: push-pull state truncated at Config.MaxStateBytes; raise it", "left_out", left, "max_bytes", g.cfg.MaxStateBytes)
	}
	return b
}

func (d *delegate) MergeRemoteState(b []byte, _ bool) { d.merge(b) }

// merge applies a state or batch message without re-broadcasting.
func (d *delegate) merge(b []byte) {
	g := (*Gossip)(d)
	entries, err := decodeState(b)
	if err != nil {
		g.log.Debug("gossip: bad remote state ignored", "err", err)
		return
	}
	var all effects
	g.mu.Lock()
	now := g.cfg.Clock.Now()
	for _, e := range entries {
		f := g.t.apply(e, now, false)
		all.broadcast = append(all.broadcast, f.broadcast...)
		for n := range f.changed {
			all.change(n)
		}
	}
	g.mu.Unlock()
	g.do(all)
}

// events is memberlist's EventDelegate.
type events Gossip

func (v *events) NotifyJoin(n *memberlist.Node) {
	g := (*Gossip)(v)
	g.mu.Lock()
	back := g.t.nodeAlive(n.Name, g.cfg.Clock.Now())
	g.mu.Unlock()
	if back {
		// Its entries were dropped when it died: pull them now rather than
		// at the next periodic push-pull.
		g.pull(n.Address())
	}
}

func (v *events) NotifyLeave(n *memberlist.Node) {
	g := (*Gossip)(v)
	g.mu.Lock()
	f := g.t.nodeLeft(n.Name, g.cfg.Clock.Now())
	g.mu.Unlock()
	g.log.Debug("gossip: member dead or left; its entries dropped", "member", n.Name)
	g.do(f)
}

func (v *events) NotifyUpdate(*memberlist.Node) {}

// newMemberlistLogger maps memberlist's "[LEVEL] memberlist: ..." lines onto slog levels.
func newMemberlistLogger(l *slog.Logger) *log.Logger {
	return log.New(logWriter{l}, "", 0)
}

type logWriter struct{ l *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimSpace(p))
	level := slog.LevelInfo
	for prefix, lv := range map[string]slog.Level{"[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelInfo, "[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError} {
		if len(msg) >= len(prefix) && msg[:len(prefix)] == prefix {
			level, msg = lv, string(bytes.TrimSpace([]byte(msg[len(prefix):])))
			break
		}
	}
	w.l.Log(context.Background(), level, msg)
	return len(p), nil
}
