package pki

import (
	"errors"
	"net"
	"runtime"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"
)

// HandshakeLimit configures LimitHandshakes.
type HandshakeLimit struct {
	// Concurrent is how many TLS handshakes run at once (default: two per
	// processor the Go runtime uses).
	Concurrent int
	// MaxWait is how long a new connection may wait for its turn before
	// it is closed unanswered (default 1 s: the agents give a handshake 2 s,
	// node/member.go's MinConnectTimeout, so one that waited longer would
	// mostly be done for a client that has given up).
	MaxWait time.Duration
}

func (l *HandshakeLimit) defaults() {
	if l.Concurrent <= 0 {
		l.Concurrent = 2 * runtime.GOMAXPROCS(0)
	}
	if l.MaxWait <= 0 {
		l.MaxWait = time.Second
	}
}

// HandshakeStats counts what a limited server did with new connections.
type HandshakeStats struct {
	Done, Shed uint64 // handshakes run (whatever their outcome), connections closed unanswered
}

// LimitedCreds are server credentials whose handshakes are admitted by
// LimitHandshakes.
type LimitedCreds struct {
	credentials.TransportCredentials
	slots   chan struct{}
	maxWait time.Duration
	done    *atomic.Uint64
	shed    *atomic.Uint64
}

// errShed is the handshake error of a connection closed unanswered.
var errShed = errors.New("too many TLS handshakes in progress: the connection waited too long for its turn and was closed; the client retries")

// LimitHandshakes bounds the TLS handshakes that creds run at once, and
// closes a connection that waited past MaxWait for its turn without
// handshaking. Without a bound, thousands of agents reconnecting at once
// (every agent after a leader kill at 10,000 nodes) each got a share of
// the CPU too small to finish a handshake within the agent's deadline:
// all of them failed, the agents retried, and the managers spent minutes
// on handshakes nobody waited for while nodes stayed without sessions
// (and raft's own goroutines waited behind them). Bounded, the handshakes
// admitted finish in their own CPU time, in arrival order, and the excess
// costs a closed socket.
//
// It applies to server handshakes only: the client side is passed through.
func LimitHandshakes(creds credentials.TransportCredentials, l HandshakeLimit) *LimitedCreds {
	l.defaults()
	return &LimitedCreds{TransportCredentials: creds, slots: make(chan struct{}, l.Concurrent), maxWait: l.MaxWait,
		done: new(atomic.Uint64), shed: new(atomic.Uint64)}
}

// ServerHandshake waits for a slot, at most MaxWait, and then handshakes.
func (c *LimitedCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	select {
	case c.slots <- struct{}{}:
	default:
		t := time.NewTimer(c.maxWait)
		select {
		case c.slots <- struct{}{}:
			t.Stop()
		case <-t.C:
			c.shed.Add(1)
			return nil, nil, errShed
		}
	}
	defer func() { <-c.slots }()
	c.done.Add(1)
	return c.TransportCredentials.ServerHandshake(conn)
}

// Clone returns credentials that share this one's slots and counters.
func (c *LimitedCreds) Clone() credentials.TransportCredentials {
	out := *c
	out.TransportCredentials = c.TransportCredentials.Clone()
	return &out
}

// Stats returns the counts so far.
func (c *LimitedCreds) Stats() HandshakeStats {
	return HandshakeStats{Done: c.done.Load(), Shed: c.shed.Load()}
}
