package gossip

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Local writes go out in one of two ways, chosen per burst by flushLoop:
//
//   - a few writes (fewer than Config.BulkThreshold within BulkWindow): UDP
//     gossip through the broadcast queue, piggybacked on memberlist's packets
//     (~5 entries a packet), re-broadcast by the nodes that learn them;
//   - a burst (a node starting with many tasks, a big scale-up): one message
//     with the whole burst sent straight to every alive member over
//     memberlist's encrypted TCP streams (SendReliable), at most 8 at a
//     time. UDP gossip needs seconds for hundreds of entries; this takes one
//     round trip. A member that cannot be reached gets the burst through UDP
//     gossip as well, and push-pull repairs anything still missing. Above
//     bulkMaxMembers members the burst goes to UDP gossip only (the stream
//     fan-out would grow with the cluster).

// BulkWindow is how long flushLoop gathers local writes before deciding.
const BulkWindow = 10 * time.Millisecond

const (
	bulkMaxMembers  = 128
	bulkParallel    = 8
	maxFreshEntries = 65536
)

// doLocal handles the effects of a local write: the entries wait for
// flushLoop, which sends them as gossip or as a bulk message.
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
		case <-g.cfg.Clock.After(BulkWindow):
		}
		g.mu.Lock()
		batch := g.fresh
		g.fresh = nil
		g.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		if len(batch) < g.cfg.BulkThreshold && !hasBig(batch) || !g.sendBulk(ctx, batch) {
			g.queue(batch)
		}
	}
}

// maxPacketEntry is the largest entry message UDP gossip carries: memberlist
// packets are 1,400 bytes, less its headers and encryption. A bigger entry
// (many aliases) goes by the bulk path, or else by push-pull only.
const maxPacketEntry = 1200

func hasBig(batch []Entry) bool {
	for i := range batch {
		if len(encodeEntry(&batch[i])) > maxPacketEntry {
			return true
		}
	}
	return false
}

// sendBulk sends batch to every other alive member over TCP. It reports
// false when the batch must go through gossip instead (too many members,
// or a member not reached).
func (g *Gossip) sendBulk(ctx context.Context, batch []Entry) bool {
	var peers []*memberlist.Node
	for _, m := range g.ml.Members() {
		if m.Name != g.cfg.NodeID && m.State == memberlist.StateAlive {
			peers = append(peers, m)
		}
	}
	if len(peers) == 0 {
		return false // alone: keep them queued for when members join
	}
	if len(peers) > bulkMaxMembers {
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
		sem    = make(chan struct{}, bulkParallel)
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
				g.log.Debug("gossip: bulk send failed; falling back to gossip", "member", p.Name, "err", err)
				mu.Lock()
				failed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return failed == 0 && ctx.Err() == nil
}
