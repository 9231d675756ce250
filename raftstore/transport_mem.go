package raftstore

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// MemNetwork connects MemTransports in one process, for tests. It can drop a
// share of the messages between two members, cut a link, or isolate a member
// from all others. Links are keyed by address.
type MemNetwork struct {
	mu        sync.Mutex
	endpoints map[string]*MemTransport
	cut       map[[2]string]bool
	drop      map[[2]string]float64
	isolated  map[string]bool
}

// NewMemNetwork returns an empty network.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{
		endpoints: map[string]*MemTransport{},
		cut:       map[[2]string]bool{},
		drop:      map[[2]string]float64{},
		isolated:  map[string]bool{},
	}
}

// Transport returns the endpoint for a member at addr, authenticated as
// nodeID. A previous endpoint at addr is replaced (a restarted member).
func (net *MemNetwork) Transport(addr, nodeID string) *MemTransport {
	t := &MemTransport{net: net, addr: addr, nodeID: nodeID, peers: map[uint64]*memPeer{}, done: make(chan struct{})}
	net.mu.Lock()
	net.endpoints[addr] = t
	net.mu.Unlock()
	return t
}

// Cut severs the link between a and b in both directions.
func (net *MemNetwork) Cut(a, b string) {
	net.mu.Lock()
	defer net.mu.Unlock()
	net.cut[[2]string{a, b}], net.cut[[2]string{b, a}] = true, true
}

// Drop drops the given share (0..1) of messages from a to b.
func (net *MemNetwork) Drop(from, to string, share float64) {
	net.mu.Lock()
	defer net.mu.Unlock()
	net.drop[[2]string{from, to}] = share
}

// Isolate cuts addr off from every other member.
func (net *MemNetwork) Isolate(addr string) {
	net.mu.Lock()
	defer net.mu.Unlock()
	net.isolated[addr] = true
}

// Heal restores every link.
func (net *MemNetwork) Heal() {
	net.mu.Lock()
	defer net.mu.Unlock()
	net.cut = map[[2]string]bool{}
	net.drop = map[[2]string]float64{}
	net.isolated = map[string]bool{}
}

// linked tells whether messages from one address reach another's live
// endpoint (a share of them may be dropped, but not all).
func (net *MemNetwork) linked(from, to string) bool {
	net.mu.Lock()
	defer net.mu.Unlock()
	if net.cut[[2]string{from, to}] || net.isolated[from] || net.isolated[to] || net.drop[[2]string{from, to}] >= 1 {
		return false
	}
	t := net.endpoints[to]
	return t != nil && !t.closed()
}

// link returns the live endpoint at `to` if from can reach it now.
func (net *MemNetwork) link(from, to string) *MemTransport {
	net.mu.Lock()
	defer net.mu.Unlock()
	if net.cut[[2]string{from, to}] || net.isolated[from] || net.isolated[to] {
		return nil
	}
	if share := net.drop[[2]string{from, to}]; share > 0 && rand.Float64() < share {
		return nil
	}
	t := net.endpoints[to]
	if t == nil || t.closed() {
		return nil
	}
	return t
}

// MemTransport is one member's endpoint on a MemNetwork. Each peer has a
// bounded queue drained by its own goroutine, as in the gRPC transport.
type MemTransport struct {
	net    *MemNetwork
	addr   string
	nodeID string

	mu      sync.Mutex
	handler Handler
	peers   map[uint64]*memPeer
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

var _ Transport = (*MemTransport)(nil)

type memPeer struct {
	addr     string
	queue    chan raftpb.Message
	stop     chan struct{}
	mu       sync.Mutex
	lastOK   time.Time
	lastFail time.Time
	fault    string // the disk fault the peer answered with last, "" once it takes messages
}

// memQueue is the per-peer queue length.
const memQueue = 1024

func (t *MemTransport) closed() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// SetHandler implements Transport.
func (t *MemTransport) SetHandler(h Handler) {
	t.mu.Lock()
	t.handler = h
	t.mu.Unlock()
}

// AddPeer implements Transport.
func (t *MemTransport) AddPeer(id uint64, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.peers[id]; ok {
		if p.addr == addr {
			return
		}
		close(p.stop)
	}
	if t.closed() {
		return
	}
	p := &memPeer{addr: addr, queue: make(chan raftpb.Message, memQueue), stop: make(chan struct{})}
	t.peers[id] = p
	t.wg.Add(1)
	go t.deliver(id, p)
}

// RemovePeer implements Transport.
func (t *MemTransport) RemovePeer(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.peers[id]; ok {
		close(p.stop)
		delete(t.peers, id)
	}
}

// Reachable implements Transport: the peer's endpoint is up and linked to
// this one, and no delivery to it failed in the last two seconds without
// one succeeding since. Like the gRPC transport's pings, the link counts
// without a message: two followers exchange none.
func (t *MemTransport) Reachable(id uint64) bool {
	t.mu.Lock()
	p := t.peers[id]
	t.mu.Unlock()
	if p == nil {
		return false
	}
	p.mu.Lock()
	failing := p.fault != "" || (p.lastFail.After(p.lastOK) && time.Since(p.lastFail) < 2*time.Second)
	p.mu.Unlock()
	return !failing && t.net.linked(t.addr, p.addr)
}

// PeerDiskFault is the disk fault the peer answered the last delivery
// with ("disk full"), "" if none.
func (t *MemTransport) PeerDiskFault(id uint64) string {
	t.mu.Lock()
	p := t.peers[id]
	t.mu.Unlock()
	if p == nil {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fault
}

// Send implements Transport.
func (t *MemTransport) Send(msgs []raftpb.Message) {
	var full []uint64
	t.mu.Lock()
	h := t.handler
	for _, m := range msgs {
		p := t.peers[m.To]
		if p == nil {
			continue
		}
		select {
		case p.queue <- m:
		default:
			full = append(full, m.To)
		}
	}
	t.mu.Unlock()
	for _, id := range full {
		if h != nil {
			h.ReportUnreachable(id)
		}
	}
}

func (t *MemTransport) deliver(id uint64, p *memPeer) {
	defer t.wg.Done()
	for {
		select {
		case <-t.done:
			return
		case <-p.stop:
			return
		case m := <-p.queue:
			t.mu.Lock()
			h := t.handler
			t.mu.Unlock()
			target := t.net.link(t.addr, p.addr)
			ok := target != nil
			var fault *DiskFaultError
			if ok {
				target.mu.Lock()
				th := target.handler
				target.mu.Unlock()
				ok = th != nil && th.Accept(m.From, t.nodeID)
				if ok {
					err := th.Step(context.Background(), m)
					ok = err == nil
					errors.As(err, &fault)
				}
			}
			p.mu.Lock()
			if ok {
				p.lastOK, p.fault = time.Now(), ""
			} else {
				p.lastFail = time.Now()
				if fault != nil {
					p.fault = fault.Condition()
				}
			}
			p.mu.Unlock()
			if h == nil {
				continue
			}
			if !ok {
				h.ReportUnreachable(id)
			}
			if m.Type == raftpb.MsgSnap {
				status := raft.SnapshotFinish
				if !ok {
					status = raft.SnapshotFailure
				}
				h.ReportSnapshot(id, status)
			}
		}
	}
}

// Close implements Transport.
func (t *MemTransport) Close() {
	t.once.Do(func() { close(t.done) })
	t.wg.Wait()
}
