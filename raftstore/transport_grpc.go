package raftstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	api "github.com/shoal-project/shoal/proto"
)

// Limits of the gRPC transport.
const (
	// peerQueue is the messages waiting per peer before new ones are
	// dropped (raft retransmits what it needs).
	peerQueue = 1024
	// SnapshotChunkSize keeps each snapshot chunk far below the 4 MiB
	// gRPC message cap.
	SnapshotChunkSize = 1 << 20
	// MaxSnapshotSize bounds what a receiver assembles in memory.
	MaxSnapshotSize = 1 << 30
	// reachableWindow: a peer heard from or successfully written to within
	// this window counts as reachable.
	reachableWindow = 3 * time.Second
	sendTimeout     = 5 * time.Second
	// pingInterval: a peer this member sent nothing to for this long gets
	// a ping (transportPing), so that members that exchange no raft
	// messages (two followers) still hear from each other within
	// reachableWindow.
	pingInterval = reachableWindow / 3
)

// transportPing is the type of the transport's pings: a raft message type
// that raft only makes locally (MsgBeat tells a leader to send its
// heartbeats), so that it can never be mistaken for a real message. The
// receiving transport notes who it came from and drops it; a member that
// does not know pings steps it, and raft ignores local message types that
// come over the network.
//
// Why: in a steady swarm the followers exchange nothing (raft's messages
// all go between the leader and each follower), so when the leader died a
// follower counted only itself as reachable and said "quorum lost (1 of 3
// managers reachable)" until the survivors' campaigns reached each other:
// calls failed with that error instead of waiting for the election
// (manager/electwait.go), in a 10,000-node failover at every kill. The pings
// keep each pair's connection open too, so that the first vote request
// after a kill does not wait for a TLS handshake with a busy peer.
const transportPing = raftpb.MsgBeat

// Dialer returns a client connection to another manager. The connection is
// owned by the dialer (it may be shared and cached); the transport never
// closes it.
type Dialer func(ctx context.Context, addr string) (*grpc.ClientConn, error)

// GRPCTransport carries raft messages over the Raft gRPC service. Each peer
// has three bounded queues, each with its sender goroutine: appends
// (MsgApp) on one client stream, every other message (heartbeats, votes,
// answers) on another, and snapshots, one at a time, in chunks on streams
// of their own. As etcd's rafthttp does, a heartbeat thus never waits
// behind megabytes of appends or a snapshot to a slow peer, which would
// cost that peer its leader (its election timeout fires) or the leader
// its leadership (CheckQuorum hears no answers in time).
type GRPCTransport struct {
	dial Dialer
	log  *slog.Logger

	mu      sync.Mutex
	handler Handler
	peers   map[uint64]*grpcPeer
	heard   map[uint64]time.Time // the last raft message from each peer
	pinged  map[uint64]time.Time // the last ping from each peer
	closed  bool
	// self is this member's raft ID, learned from the messages it sends
	// (0 until the first: no pings before).
	self atomic.Uint64
	wg   sync.WaitGroup
}

var _ Transport = (*GRPCTransport)(nil)

// NewGRPCTransport returns a transport that dials peers with dial.
func NewGRPCTransport(dial Dialer, log *slog.Logger) *GRPCTransport {
	if log == nil {
		log = slog.Default()
	}
	return &GRPCTransport{dial: dial, log: log.With("component", "raft-transport"), peers: map[uint64]*grpcPeer{}, heard: map[uint64]time.Time{}, pinged: map[uint64]time.Time{}}
}

type grpcPeer struct {
	id    uint64
	addr  string
	conn  atomic.Pointer[grpc.ClientConn] // the connection the streams use
	queue chan raftpb.Message             // all but appends and snapshots
	apps  chan raftpb.Message             // MsgApp
	snaps chan raftpb.Message             // MsgSnap
	ctx   context.Context
	stop  context.CancelFunc

	mu     sync.Mutex
	lastOK time.Time
	failed bool
	// fault is the disk fault the peer reported when it ended our stream
	// (its raft log cannot be written), at faultAt; cleared when a message
	// from it arrives.
	fault   string
	faultAt time.Time
}

// SetHandler implements Transport.
func (t *GRPCTransport) SetHandler(h Handler) {
	t.mu.Lock()
	t.handler = h
	t.mu.Unlock()
}

// AddPeer implements Transport.
func (t *GRPCTransport) AddPeer(id uint64, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	if p, ok := t.peers[id]; ok {
		if p.addr == addr {
			return
		}
		p.stop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &grpcPeer{id: id, addr: addr, ctx: ctx, stop: cancel,
		queue: make(chan raftpb.Message, peerQueue), apps: make(chan raftpb.Message, peerQueue), snaps: make(chan raftpb.Message, 1)}
	t.peers[id] = p
	t.wg.Add(3)
	go t.run(p, p.queue, true)
	go t.run(p, p.apps, false)
	go t.runSnapshots(p)
}

// RemovePeer implements Transport.
func (t *GRPCTransport) RemovePeer(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.peers[id]; ok {
		p.stop()
		delete(t.peers, id)
	}
}

// PeerAddr returns the address of a peer, "" if unknown.
func (t *GRPCTransport) PeerAddr(id uint64) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.peers[id]; p != nil {
		return p.addr
	}
	return ""
}

// Reachable implements Transport.
func (t *GRPCTransport) Reachable(id uint64) bool {
	t.mu.Lock()
	p := t.peers[id]
	heard := t.heard[id]
	if pinged := t.pinged[id]; pinged.After(heard) {
		heard = pinged
	}
	t.mu.Unlock()
	if p == nil {
		return false
	}
	if p.diskFault() != "" {
		return false // it takes no part in raft
	}
	if time.Since(heard) < reachableWindow {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.failed && time.Since(p.lastOK) < reachableWindow
}

// PeerDiskFault is the disk fault a peer reported recently ("disk full"),
// "" if none.
func (t *GRPCTransport) PeerDiskFault(id uint64) string {
	t.mu.Lock()
	p := t.peers[id]
	t.mu.Unlock()
	if p == nil {
		return ""
	}
	return p.diskFault()
}

func (p *grpcPeer) diskFault() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fault != "" && time.Since(p.faultAt) < reachableWindow {
		return p.fault
	}
	return ""
}

func (p *grpcPeer) setDiskFault(fault string) {
	p.mu.Lock()
	p.fault, p.faultAt = fault, time.Now()
	p.mu.Unlock()
}

// ConnectionDown reports whether the connection to a peer is known to be
// broken (a stream was open and its connection is no longer ready); a peer
// never dialled is not known to be down.
func (t *GRPCTransport) ConnectionDown(id uint64) bool {
	t.mu.Lock()
	p := t.peers[id]
	t.mu.Unlock()
	if p == nil {
		return false
	}
	c := p.conn.Load()
	return c != nil && c.GetState() != connectivity.Ready
}

// LastHeard is when a raft message from the peer last arrived (pings do
// not count: a leader whose raft is stuck still pings).
func (t *GRPCTransport) LastHeard(id uint64) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.heard[id]
}

// Send implements Transport.
func (t *GRPCTransport) Send(msgs []raftpb.Message) {
	var full, snapBusy []uint64
	if len(msgs) > 0 && t.self.Load() == 0 {
		t.self.Store(msgs[0].From)
	}
	t.mu.Lock()
	h := t.handler
	for _, m := range msgs {
		p := t.peers[m.To]
		if p == nil {
			continue
		}
		q := p.queue
		switch m.Type {
		case raftpb.MsgApp:
			q = p.apps
		case raftpb.MsgSnap:
			q = p.snaps
		}
		select {
		case q <- m:
		default:
			if m.Type == raftpb.MsgSnap {
				snapBusy = append(snapBusy, m.To)
			} else {
				full = append(full, m.To)
			}
		}
	}
	t.mu.Unlock()
	if h == nil {
		return
	}
	for _, id := range full {
		h.ReportUnreachable(id)
	}
	for _, id := range snapBusy {
		// One snapshot at a time per peer: raft sends another later.
		h.ReportSnapshot(id, raft.SnapshotFailure)
	}
}

// Close implements Transport: stops every sender and waits for them.
func (t *GRPCTransport) Close() {
	t.mu.Lock()
	t.closed = true
	for id, p := range t.peers {
		p.stop()
		delete(t.peers, id)
	}
	t.mu.Unlock()
	t.wg.Wait()
}

func (t *GRPCTransport) report(p *grpcPeer, ok bool) {
	p.mu.Lock()
	p.failed = !ok
	if ok {
		p.lastOK = time.Now()
	}
	p.mu.Unlock()
	if !ok {
		t.mu.Lock()
		h := t.handler
		t.mu.Unlock()
		if h != nil {
			h.ReportUnreachable(p.id)
		}
	}
}

// runSnapshots sends the peer's snapshots, one at a time.
func (t *GRPCTransport) runSnapshots(p *grpcPeer) {
	defer t.wg.Done()
	for {
		select {
		case <-p.ctx.Done():
			return
		case m := <-p.snaps:
			t.sendSnapshot(p, m)
		}
	}
}

// run is one of the peer's senders: it keeps a message stream open and
// sends what queue holds on it; with pings, it also pings the peer when it
// sent it nothing for pingInterval.
func (t *GRPCTransport) run(p *grpcPeer, queue chan raftpb.Message, pings bool) {
	defer t.wg.Done()
	var stream grpc.ClientStreamingClient[api.RaftMessage, api.ProcessRaftMessageResponse]
	var cancelStream context.CancelFunc
	closeStream := func() {
		if cancelStream != nil {
			cancelStream()
			cancelStream, stream = nil, nil
		}
	}
	defer closeStream()
	var tick <-chan time.Time
	if pings {
		ticker := time.NewTicker(pingInterval)
		defer ticker.Stop()
		tick = ticker.C
	}
	backoff, lastSent := time.Time{}, time.Time{}
	for {
		var m raftpb.Message
		ping := false
		select {
		case <-p.ctx.Done():
			return
		case m = <-queue:
		case <-tick:
			self := t.self.Load()
			if self == 0 || time.Since(lastSent) < pingInterval || time.Now().Before(backoff) {
				continue
			}
			m, ping = raftpb.Message{Type: transportPing, From: self, To: p.id}, true
		}
		if time.Now().Before(backoff) {
			t.report(p, false) // still down: drop, raft will retry
			continue
		}
		if stream == nil {
			var err error
			stream, cancelStream, err = t.openStream(p)
			if err != nil {
				t.log.Debug("raft peer unreachable", "peer", fmt.Sprintf("%x", p.id), "addr", p.addr, "err", err)
				t.report(p, false)
				backoff = time.Now().Add(100 * time.Millisecond)
				continue
			}
		}
		data, err := m.Marshal()
		if err != nil {
			t.log.Error("encode raft message", "err", err)
			continue
		}
		if err := stream.Send(&api.RaftMessage{Message: data}); err != nil {
			if errors.Is(err, io.EOF) {
				var resp *api.ProcessRaftMessageResponse
				resp, err = stream.CloseAndRecv()
				if f := resp.GetDiskFault(); err == nil && f != "" {
					p.setDiskFault(f)
					err = fmt.Errorf("its raft log cannot be written (%s)", f)
				}
			}
			t.log.Debug("raft stream broke", "peer", fmt.Sprintf("%x", p.id), "addr", p.addr, "err", err)
			closeStream()
			t.report(p, false)
			backoff = time.Now().Add(100 * time.Millisecond)
			continue
		}
		lastSent = time.Now()
		if !ping {
			// A ping written into the stream says little about the peer
			// (nothing answers it): its own pings tell this side.
			t.report(p, true)
		}
	}
}

func (t *GRPCTransport) openStream(p *grpcPeer) (grpc.ClientStreamingClient[api.RaftMessage, api.ProcessRaftMessageResponse], context.CancelFunc, error) {
	dctx, dcancel := context.WithTimeout(p.ctx, sendTimeout)
	conn, err := t.dial(dctx, p.addr)
	dcancel()
	if err != nil {
		return nil, nil, err
	}
	p.conn.Store(conn)
	ctx, cancel := context.WithCancel(p.ctx)
	s, err := api.NewRaftClient(conn).ProcessRaftMessage(ctx)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return s, cancel, nil
}

func (t *GRPCTransport) sendSnapshot(p *grpcPeer, m raftpb.Message) {
	err := t.streamSnapshot(p, m)
	t.mu.Lock()
	h := t.handler
	t.mu.Unlock()
	status := raft.SnapshotFinish
	if err != nil {
		t.log.Warn("sending snapshot failed", "peer", fmt.Sprintf("%x", p.id), "err", err)
		status = raft.SnapshotFailure
		t.report(p, false)
	}
	if h != nil {
		h.ReportSnapshot(p.id, status)
	}
}

func (t *GRPCTransport) streamSnapshot(p *grpcPeer, m raftpb.Message) error {
	data := m.Snapshot.Data
	hdr := m
	snap := *m.Snapshot
	snap.Data = nil
	hdr.Snapshot = &snap
	head, err := hdr.Marshal()
	if err != nil {
		return err
	}
	// Generous: a minute per 64 MiB, at least a minute.
	timeout := time.Minute * time.Duration(1+len(data)/(64<<20))
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	conn, err := t.dial(ctx, p.addr)
	if err != nil {
		return err
	}
	s, err := api.NewRaftClient(conn).StreamSnapshot(ctx)
	if err != nil {
		return err
	}
	total := uint64(len(data))
	first := true
	for off := 0; first || off < len(data); first = false {
		end := min(off+SnapshotChunkSize, len(data))
		c := &api.SnapshotChunk{Offset: uint64(off), Data: data[off:end], TotalSize: total, Last: end == len(data)}
		if off == 0 {
			c.Message = head
		}
		if err := s.Send(c); err != nil {
			if errors.Is(err, io.EOF) {
				_, err = s.CloseAndRecv()
			}
			return err
		}
		off = end
	}
	_, err = s.CloseAndRecv()
	return err
}

// ---- server side ----

// RaftService serves the Raft gRPC service for a Node: message streams,
// snapshot streams, and membership changes (forwarded to the leader).
type RaftService struct {
	api.UnimplementedRaftServer
	node      *Node
	transport *GRPCTransport
	// Identify returns the authenticated node ID of a call's peer.
	identify func(ctx context.Context) (string, error)
}

// NewRaftService returns the service for node. identify extracts the caller's
// node ID from the call context (its certificate).
func NewRaftService(node *Node, transport *GRPCTransport, identify func(ctx context.Context) (string, error)) *RaftService {
	return &RaftService{node: node, transport: transport, identify: identify}
}

// DecodeMessage decodes a raft message frame from the network.
func DecodeMessage(b []byte) (raftpb.Message, error) {
	var m raftpb.Message
	if err := m.Unmarshal(b); err != nil {
		return m, fmt.Errorf("bad raft message: %w", err)
	}
	if m.From == raft.None {
		return m, errors.New("raft message without a sender")
	}
	return m, nil
}

func (s *RaftService) heard(from uint64) {
	s.transport.mu.Lock()
	s.transport.heard[from] = time.Now()
	p := s.transport.peers[from]
	s.transport.mu.Unlock()
	if p != nil {
		p.setDiskFault("") // it speaks raft again
	}
}

// pinged notes a ping from a peer (transportPing): it is there, though its
// raft said nothing.
func (s *RaftService) pinged(from uint64) {
	s.transport.mu.Lock()
	s.transport.pinged[from] = time.Now()
	s.transport.mu.Unlock()
}

// ProcessRaftMessage receives a stream of messages from one peer.
func (s *RaftService) ProcessRaftMessage(stream grpc.ClientStreamingServer[api.RaftMessage, api.ProcessRaftMessageResponse]) error {
	ctx := stream.Context()
	nodeID, err := s.identify(ctx)
	if err != nil {
		return err
	}
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&api.ProcessRaftMessageResponse{})
		}
		if err != nil {
			return err
		}
		m, err := DecodeMessage(in.GetMessage())
		if err != nil {
			return err
		}
		if m.Type == raftpb.MsgSnap {
			return fmt.Errorf("snapshots must use StreamSnapshot")
		}
		if !s.node.Accept(m.From, nodeID) {
			return fmt.Errorf("raft sender %x does not match the caller's certificate (%s)", m.From, nodeID)
		}
		if m.Type == transportPing {
			s.pinged(m.From)
			if s.transport.PeerDiskFault(m.From) == "" { // a member that cannot persist takes no part
				s.node.peerAlive(ctx, m.From)
			}
			continue
		}
		s.heard(m.From)
		if err := s.node.Step(ctx, m); err != nil {
			var df *DiskFaultError
			if errors.As(err, &df) {
				// This member cannot persist: end the stream with the fault,
				// which the sender shows as this member's state.
				return stream.SendAndClose(&api.ProcessRaftMessageResponse{DiskFault: df.Condition()})
			}
			s.transport.log.Debug("step raft message", "from", fmt.Sprintf("%x", m.From), "err", err)
		}
	}
}

// StreamSnapshot receives one snapshot message in chunks.
func (s *RaftService) StreamSnapshot(stream grpc.ClientStreamingServer[api.SnapshotChunk, api.SnapshotResponse]) error {
	ctx := stream.Context()
	nodeID, err := s.identify(ctx)
	if err != nil {
		return err
	}
	var msg raftpb.Message
	var data []byte
	for {
		c, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return errors.New("snapshot stream ended before its last chunk")
		}
		if err != nil {
			return err
		}
		if data == nil {
			if msg, err = DecodeMessage(c.GetMessage()); err != nil {
				return err
			}
			if msg.Type != raftpb.MsgSnap || msg.Snapshot == nil {
				return errors.New("first snapshot chunk does not carry a snapshot message")
			}
			if !s.node.Accept(msg.From, nodeID) {
				return fmt.Errorf("raft sender %x does not match the caller's certificate (%s)", msg.From, nodeID)
			}
			if c.GetTotalSize() > MaxSnapshotSize {
				return fmt.Errorf("snapshot of %d bytes exceeds the %d-byte limit", c.GetTotalSize(), MaxSnapshotSize)
			}
			data = make([]byte, 0, c.GetTotalSize())
		}
		if c.GetOffset() != uint64(len(data)) || uint64(len(data)+len(c.GetData())) > c.GetTotalSize() {
			return fmt.Errorf("snapshot chunk at offset %d does not follow %d bytes received", c.GetOffset(), len(data))
		}
		data = append(data, c.GetData()...)
		if c.GetLast() {
			if uint64(len(data)) != c.GetTotalSize() {
				return fmt.Errorf("snapshot has %d bytes, expected %d", len(data), c.GetTotalSize())
			}
			break
		}
	}
	msg.Snapshot.Data = data
	s.heard(msg.From)
	if err := s.node.Step(ctx, msg); err != nil {
		return err
	}
	return stream.SendAndClose(&api.SnapshotResponse{})
}
