package gossip

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// memNet is an in-memory network of memberlist transports that can cut
// links (partitions) and counts the bytes sent.
type memNet struct {
	mu    sync.Mutex
	nodes map[string]*memTransport // by "127.0.0.1:port"
	port  int
	cut   map[[2]string]bool // [from, to] addresses
	hang  map[string]bool    // addresses whose dials hang until the timeout
	bytes atomic.Int64
}

func newMemNet() *memNet {
	return &memNet{nodes: make(map[string]*memTransport), cut: make(map[[2]string]bool), hang: make(map[string]bool), port: 10000}
}

// transport returns a new transport with a fresh address, or at addr when given
// (a restarted node keeping its address).
func (n *memNet) transport(addr string) *memTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	if addr == "" {
		n.port++
		addr = "127.0.0.1:" + strconv.Itoa(n.port)
	}
	t := &memTransport{net: n, addr: addr, packets: make(chan *memberlist.Packet, 4096), streams: make(chan net.Conn, 64)}
	n.nodes[addr] = t
	return t
}

// partition cuts every link between group a and group b (both directions).
func (n *memNet) partition(a, b []*memTransport) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, x := range a {
		for _, y := range b {
			n.cut[[2]string{x.addr, y.addr}] = true
			n.cut[[2]string{y.addr, x.addr}] = true
		}
	}
}

// blackhole makes t silent: packets to it are lost and dials to it hang
// until their timeout, like a host that went away.
func (n *memNet) blackhole(t *memTransport) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.hang[t.addr] = true
}

func (n *memNet) heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cut)
}

func (n *memNet) route(from, to string) *memTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cut[[2]string{from, to}] || n.hang[to] {
		return nil
	}
	t := n.nodes[to]
	if t == nil || t.down.Load() {
		return nil
	}
	return t
}

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

type memTransport struct {
	net     *memNet
	addr    string
	packets chan *memberlist.Packet
	streams chan net.Conn
	down    atomic.Bool
}

var _ memberlist.NodeAwareTransport = (*memTransport)(nil)

func (t *memTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	host, port, _ := net.SplitHostPort(t.addr)
	p, _ := strconv.Atoi(port)
	return net.ParseIP(host), p, nil
}

func (t *memTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *memTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	if t.down.Load() {
		return now, nil
	}
	t.net.bytes.Add(int64(len(b)))
	dst := t.net.route(t.addr, a.Addr)
	if dst == nil {
		return now, nil // lost, like UDP
	}
	select {
	case dst.packets <- &memberlist.Packet{Buf: bytes.Clone(b), From: memAddr(t.addr), Timestamp: now}:
	default: // receive buffer full: lost
	}
	return now, nil
}

func (t *memTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *memTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *memTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	t.net.mu.Lock()
	hang := t.net.hang[a.Addr]
	t.net.mu.Unlock()
	if hang {
		time.Sleep(timeout)
		return nil, fmt.Errorf("dial %s: timeout", a.Addr)
	}
	dst := t.net.route(t.addr, a.Addr)
	if dst == nil || t.down.Load() {
		return nil, fmt.Errorf("dial %s: no route", a.Addr)
	}
	c1, c2 := net.Pipe()
	select {
	case dst.streams <- &countConn{Conn: c1, n: &t.net.bytes, remote: memAddr(t.addr)}:
	case <-time.After(timeout):
		return nil, fmt.Errorf("dial %s: timeout", a.Addr)
	}
	return &countConn{Conn: c2, n: &t.net.bytes, remote: memAddr(a.Addr)}, nil
}

func (t *memTransport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown takes the node off the network (a killed process).
func (t *memTransport) Shutdown() error {
	t.down.Store(true)
	return nil
}

type countConn struct {
	net.Conn
	n      *atomic.Int64
	remote net.Addr
}

func (c *countConn) Write(b []byte) (int, error) {
	c.n.Add(int64(len(b)))
	return c.Conn.Write(b)
}

func (c *countConn) RemoteAddr() net.Addr { return c.remote }
