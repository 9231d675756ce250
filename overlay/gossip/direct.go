package gossip

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Local writes go out one of two ways, chosen per burst by flushLoop, which
// gathers them for FlushWindow:
//
//   - direct (the default): one message with the whole burst sent straight
//     to every alive member over memberlist's encrypted TCP streams
//     (SendReliable), at most 8 members at a time, at most 16 bursts in
//     flight. Every member has the writes one round trip later, reliably.
//   - UDP gossip, when the burst is smaller than Config.DirectThreshold, the
//     cluster has more than directMaxMembers members (the fan-out would grow
//     with the cluster), or a member could not be reached directly: the
//     entries are broadcast through memberlist's queue, piggybacked on its
//     packets (~4 entries a packet), sent RetransmitMult × log(N+1) times
//     by every node that learns them.
//
// Why direct by default: limited-retransmit gossip reaches every node only
// with high probability; an entry that misses a node waits for push-pull
// (up to PushPullInterval). BenchmarkConvergence (5 nodes) shows it: with
// gossip 100 entries took 11-19 s to reach every node and 1,000 took 27 s,
// against 17 ms and 93 ms direct, which also sent 16× fewer bytes. A
// withdrawn backend that stays in other nodes' VIP tables for 15 s is the
// stale entry this package exists to prevent.

// FlushWindow is how long flushLoop gathers local writes before sending them.
const FlushWindow = 10 * time.Millisecond

const (
	directMaxMembers = 128
	directParallel   = 8  // streams at a time for one burst
	directInflight   = 16 // bursts being sent at a time
	maxFreshEntries  = 65536
)

// doLocal handles the effects of a local write: the entries wait for
// flushLoop, which sends them directly or as gossip.
func (g *Gossip) doLocal(f effects) {
	if len(f.broadcast) > 0 {
		g.mu.Lock()
		overflow := len(g.fresh)+len(f.broadcast) > maxFreshEntries
		if !overflow {
			g.fresh = append(g.fresh, f.broadcast...)
		}
		g.mu.Unlock()
		if overflow { // flushLoop is stuck (slow streams): plain gossip
			g.queue(f.broadcast)
		}
		select {
		case g.flushc <- struct{}{}:
		default:
		}
	}
	g.changed(f)
}

func (g *Gossip) flushLoop(ctx context.Context) {
	defer g.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.flushc:
		}
		select {
		case <-ctx.Done():
			return
		case <-g.cfg.Clock.After(FlushWindow):
		}
		g.mu.Lock()
		batch := g.fresh
		g.fresh = nil
		g.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		if len(batch) < g.cfg.DirectThreshold && !hasBig(batch) {
			g.queue(batch)
			continue
		}
		// Sends run in their own goroutines so that a member that does not
		// answer (dead but not yet declared so: the dial waits for
		// memberlist's TCPTimeout) delays neither the other members nor the
		// next writes. At most directInflight bursts are in flight; beyond
		// that, gossip.
		select {
		case g.inflight <- struct{}{}:
			g.wg.Add(1) // flushLoop's own count keeps the group above zero
			go func() {
				defer g.wg.Done()
				defer func() { <-g.inflight }()
				if !g.sendDirect(ctx, batch) {
					g.queue(batch)
				}
			}()
		default:
			g.queue(batch)
		}
	}
}

// maxPacketEntry is the largest entry message UDP gossip carries: memberlist
// packets are 1,400 bytes, less its headers and encryption. A bigger entry
// (many aliases) goes by the direct path whatever DirectThreshold says (if
// that fails, by push-pull only).
const maxPacketEntry = 1200

func hasBig(batch []Entry) bool {
	for i := range batch {
		if len(encodeEntry(&batch[i])) > maxPacketEntry {
			return true
		}
	}
	return false
}

// sendDirect sends batch to every other alive member over TCP. It reports
// false when the batch must go through gossip instead (too many members,
// or a member not reached).
func (g *Gossip) sendDirect(ctx context.Context, batch []Entry) bool {
	var peers []*memberlist.Node
	for _, m := range g.ml.Members() {
		if m.Name != g.cfg.NodeID && m.State == memberlist.StateAlive {
			peers = append(peers, m)
		}
	}
	if len(peers) == 0 {
		return false // alone: keep them queued for when members join
	}
	if len(peers) > directMaxMembers {
		return false
	}
	ptrs := make([]*Entry, len(batch))
	for i := range batch {
		ptrs[i] = &batch[i]
	}
	msg, left := encodeState(ptrs, g.cfg.MaxStateBytes)
	if left > 0 {
		return false
	}
	msg[0] = msgBatch
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed int
		sem    = make(chan struct{}, directParallel)
	)
	for _, p := range peers {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// Bounded by memberlist's TCPTimeout.
			if err := g.ml.SendReliable(p, msg); err != nil {
				g.log.Debug("gossip: direct send failed; falling back to gossip", "member", p.Name, "err", err)
				mu.Lock()
				failed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return failed == 0 && ctx.Err() == nil
}
