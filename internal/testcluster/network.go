package testcluster

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/pki"
)

// grpcNet is the in-memory network the nodes' gRPC calls (agent to
// manager, forwarded calls between managers, the test's Control client)
// travel on: one bufconn listener per manager, and links between nodes that
// can be cut. Raft messages do not use it: they travel on the cluster's
// raftstore.MemNetwork, which Cluster cuts together with this one.
type grpcNet struct {
	bytes atomic.Int64 // bytes read and written on every connection: the pump's activity signal

	mu        sync.Mutex
	listeners map[string]*memListener // by node name
	cut       map[[2]string]bool      // node names, both directions
	isolated  map[string]bool
	conns     map[*linkConn]struct{}
}

func newGRPCNet() *grpcNet {
	return &grpcNet{
		listeners: map[string]*memListener{},
		cut:       map[[2]string]bool{},
		isolated:  map[string]bool{},
		conns:     map[*linkConn]struct{}{},
	}
}

// listen opens the listener of a manager, replacing a previous one.
func (n *grpcNet) listen(name string) *memListener {
	l := newMemListener()
	n.mu.Lock()
	n.listeners[name] = l
	n.mu.Unlock()
	return l
}

// pipeSize bounds each direction's buffer of a connection (pipe.go): it
// grows up to this while the reader lags, and is let go once drained.
const pipeSize = 32 << 10

// unlisten removes a stopped manager's listener, so dials fail at once
// (gRPC keeps redialling a lost address in the background).
func (n *grpcNet) unlisten(name string, l *memListener) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.listeners[name] == l {
		delete(n.listeners, name)
	}
}

func (n *grpcNet) blockedLocked(a, b string) bool {
	if n.cut[[2]string{a, b}] {
		return true
	}
	// The test's own client stands for the CLI on the node it calls:
	// isolating a node does not cut it off.
	return a != adminName && b != adminName && (n.isolated[a] || n.isolated[b])
}

// adminName is the node name of the test's Control client.
const adminName = "admin"

// dial connects from node `from` to the manager named by addr.
func (n *grpcNet) dial(ctx context.Context, from, addr string) (net.Conn, error) {
	to := nameOf(addr)
	n.mu.Lock()
	l := n.listeners[to]
	blocked := n.blockedLocked(from, to)
	n.mu.Unlock()
	if blocked {
		return nil, fmt.Errorf("testcluster: %s cannot reach %s (partitioned)", from, to)
	}
	if l == nil {
		return nil, fmt.Errorf("testcluster: connection to %s refused (not running)", addr)
	}
	raw, err := l.DialContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("testcluster: connection to %s refused: %w", addr, err)
	}
	c := &linkConn{Conn: raw, net: n, from: from, to: to}
	n.mu.Lock()
	if n.blockedLocked(from, to) { // cut while dialling
		n.mu.Unlock()
		raw.Close()
		return nil, fmt.Errorf("testcluster: %s cannot reach %s (partitioned)", from, to)
	}
	n.conns[c] = struct{}{}
	n.mu.Unlock()
	return c, nil
}

// blockedConnsLocked removes and returns the open connections a cut or
// isolation now forbids: the caller closes them once it has let go of the
// lock, as a partition ends TCP connections (after their keepalive).
func (n *grpcNet) blockedConnsLocked() []*linkConn {
	var out []*linkConn
	for c := range n.conns {
		if n.blockedLocked(c.from, c.to) {
			delete(n.conns, c)
			out = append(out, c)
		}
	}
	return out
}

func closeAll(conns []*linkConn) {
	for _, c := range conns {
		c.Close()
	}
}

func (n *grpcNet) cutLink(a, b string) {
	n.mu.Lock()
	n.cut[[2]string{a, b}], n.cut[[2]string{b, a}] = true, true
	conns := n.blockedConnsLocked()
	n.mu.Unlock()
	closeAll(conns)
}

func (n *grpcNet) isolate(name string) {
	n.mu.Lock()
	n.isolated[name] = true
	conns := n.blockedConnsLocked()
	n.mu.Unlock()
	closeAll(conns)
}

func (n *grpcNet) heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut = map[[2]string]bool{}
	n.isolated = map[string]bool{}
}

// nameOf is the node name of a "name:port" address.
func nameOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[:i]
	}
	return addr
}

// linkConn is one connection between two nodes; it counts its traffic.
type linkConn struct {
	net.Conn
	net      *grpcNet
	from, to string
	once     sync.Once
}

func (c *linkConn) Read(b []byte) (int, error) {
	k, err := c.Conn.Read(b)
	c.net.bytes.Add(int64(k))
	return k, err
}

func (c *linkConn) Write(b []byte) (int, error) {
	k, err := c.Conn.Write(b)
	c.net.bytes.Add(int64(k))
	return k, err
}

func (c *linkConn) Close() error {
	c.once.Do(func() {
		c.net.mu.Lock()
		delete(c.net.conns, c)
		c.net.mu.Unlock()
	})
	return c.Conn.Close()
}

// dialer is one node's connection cache, the worker.Config.Dial and
// manager.Config.Dial of that node: mTLS with the node's certificate,
// pinned to the cluster's root CA.
type dialer struct {
	from  string
	creds credentials.TransportCredentials
	// conn opens the connection under TLS: the in-memory network's for a
	// node of a Cluster, TCP for a manager process (tcpDialer).
	conn func(ctx context.Context, addr string) (net.Conn, error)

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

func newDialer(n *grpcNet, from string, kp *pki.KeyPair, roots *x509.CertPool) *dialer {
	return &dialer{
		from: from, conns: map[string]*grpc.ClientConn{},
		creds: credentials.NewTLS(pki.PeerClientConfig(kp, roots, pki.ManagerServerName)),
		conn:  func(ctx context.Context, a string) (net.Conn, error) { return n.dial(ctx, from, a) },
	}
}

// tcpDialer is newDialer over TCP, for managers in processes of their own
// (ProcCluster) and the test's Control client of them.
func tcpDialer(from string, kp *pki.KeyPair, roots *x509.CertPool) *dialer {
	var nd net.Dialer
	return &dialer{
		from: from, conns: map[string]*grpc.ClientConn{},
		creds: credentials.NewTLS(pki.PeerClientConfig(kp, roots, pki.ManagerServerName)),
		conn:  func(ctx context.Context, a string) (net.Conn, error) { return nd.DialContext(ctx, "tcp", a) },
	}
}

// maxMsg is the gRPC message cap, as the daemon's.
const maxMsg = 4 << 20

func (d *dialer) dial(_ context.Context, addr string) (*grpc.ClientConn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errdefs.Unavailable("testcluster: node %s stopped", d.from)
	}
	if c := d.conns[addr]; c != nil {
		return c, nil
	}
	c, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithContextDialer(d.conn),
		grpc.WithTransportCredentials(d.creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)),
		// Reconnect quickly once a manager is back or a partition healed
		// (gRPC's reconnect backoff is wall time, not the fake clock).
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
	)
	if err != nil {
		return nil, errdefs.Unavailable("connect to %s: %v", addr, err)
	}
	d.conns[addr] = c
	return c, nil
}

func (d *dialer) close() {
	d.mu.Lock()
	conns := d.conns
	d.conns, d.closed = map[string]*grpc.ClientConn{}, true
	d.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}
