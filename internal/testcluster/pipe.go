package testcluster

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// memListener is a manager's listener on the in-memory gRPC network: each
// dial makes a pair of pipeConns and hands one end to Accept. Unlike
// bufconn, whose pipes allocate their whole buffer at each dial (two
// 32 KiB buffers per connection, which thousands of simulated nodes pay
// while idle), a pipe holds only the bytes in flight: its buffer grows up
// to pipeSize as the writer gets ahead of the reader, and is let go once
// the reader has drained it, as a kernel socket's buffer is outside the
// process.
type memListener struct {
	conns  chan net.Conn
	done   chan struct{}
	closer sync.Once
}

func newMemListener() *memListener {
	return &memListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

// errListenerClosed is what Accept and a dial to a closed listener return.
var errListenerClosed = errors.New("testcluster: listener closed")

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, errListenerClosed
	}
}

func (l *memListener) Close() error {
	l.closer.Do(func() { close(l.done) })
	return nil
}

func (l *memListener) Addr() net.Addr { return memAddr{} }

// DialContext connects to the listener, waiting for Accept until ctx ends.
func (l *memListener) DialContext(ctx context.Context) (net.Conn, error) {
	a, b := newPipeConns()
	select {
	case l.conns <- b:
		return a, nil
	case <-l.done:
	case <-ctx.Done():
	}
	a.Close()
	b.Close()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, errListenerClosed
}

type memAddr struct{}

func (memAddr) Network() string { return "mem" }
func (memAddr) String() string  { return "mem" }

// pipe is one direction of a connection: bytes written and not read yet.
type pipe struct {
	mu       sync.Mutex
	buf      []byte
	readable chan struct{} // a token after a write
	writable chan struct{} // a token after a read
	done     chan struct{} // closed when either end closes
	closer   sync.Once
}

func newPipe() *pipe {
	return &pipe{readable: make(chan struct{}, 1), writable: make(chan struct{}, 1), done: make(chan struct{})}
}

func (p *pipe) close() { p.closer.Do(func() { close(p.done) }) }

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// pipeConn is one end of an in-memory connection.
type pipeConn struct {
	rd, wr        *pipe // the directions it reads and writes
	rdl, wdl      *deadline
	closed        chan struct{} // closed by Close
	closer        sync.Once
	local, remote net.Addr
}

func newPipeConns() (*pipeConn, *pipeConn) {
	ab, ba := newPipe(), newPipe()
	a := &pipeConn{rd: ba, wr: ab, rdl: newDeadline(), wdl: newDeadline(), closed: make(chan struct{}), local: memAddr{}, remote: memAddr{}}
	b := &pipeConn{rd: ab, wr: ba, rdl: newDeadline(), wdl: newDeadline(), closed: make(chan struct{}), local: memAddr{}, remote: memAddr{}}
	return a, b
}

// Read returns buffered bytes; once the peer has closed and every byte is
// read, io.EOF.
func (c *pipeConn) Read(b []byte) (int, error) {
	for {
		select {
		case <-c.closed:
			return 0, net.ErrClosed
		default:
		}
		p := c.rd
		p.mu.Lock()
		if len(p.buf) > 0 {
			n := copy(b, p.buf)
			p.buf = p.buf[n:]
			if len(p.buf) == 0 {
				p.buf = nil // let the buffer go while idle
			}
			p.mu.Unlock()
			signal(p.writable)
			return n, nil
		}
		p.mu.Unlock()
		select {
		case <-p.done:
			p.mu.Lock()
			more := len(p.buf) > 0
			p.mu.Unlock()
			if !more {
				return 0, io.EOF
			}
		case <-p.readable:
		case <-c.rdl.wait():
			return 0, os.ErrDeadlineExceeded
		case <-c.closed:
			return 0, net.ErrClosed
		}
	}
}

// Write buffers b, waiting while pipeSize bytes are unread.
func (c *pipeConn) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		p := c.wr
		select {
		case <-c.closed:
			return written, net.ErrClosed
		case <-p.done:
			return written, io.ErrClosedPipe
		case <-c.wdl.wait():
			return written, os.ErrDeadlineExceeded
		default:
		}
		p.mu.Lock()
		if room := pipeSize - len(p.buf); room > 0 {
			k := min(room, len(b))
			p.buf = append(p.buf, b[:k]...)
			p.mu.Unlock()
			signal(p.readable)
			b, written = b[k:], written+k
			continue
		}
		p.mu.Unlock()
		select {
		case <-p.writable:
		case <-p.done:
		case <-c.wdl.wait():
		case <-c.closed:
		}
	}
	return written, nil
}

// Close ends both directions: the peer reads what is buffered, then EOF.
func (c *pipeConn) Close() error {
	c.closer.Do(func() {
		close(c.closed)
		c.rd.close()
		c.wr.close()
		c.rdl.stop()
		c.wdl.stop()
	})
	return nil
}

func (c *pipeConn) LocalAddr() net.Addr  { return c.local }
func (c *pipeConn) RemoteAddr() net.Addr { return c.remote }

func (c *pipeConn) SetDeadline(t time.Time) error {
	c.rdl.set(t)
	c.wdl.set(t)
	return nil
}
func (c *pipeConn) SetReadDeadline(t time.Time) error  { c.rdl.set(t); return nil }
func (c *pipeConn) SetWriteDeadline(t time.Time) error { c.wdl.set(t); return nil }

// deadline is a settable point in time whose wait channel is closed once
// it has passed.
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	passed chan struct{}
}

func newDeadline() *deadline { return &deadline{passed: make(chan struct{})} }

// set arms the deadline at t; the zero time clears it.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.passed // the timer fired (or is firing): wait until it closed
	}
	d.timer = nil
	select {
	case <-d.passed:
		d.passed = make(chan struct{})
	default:
	}
	if t.IsZero() {
		return
	}
	if dur := time.Until(t); dur <= 0 {
		close(d.passed)
		return
	}
	passed := d.passed
	d.timer = time.AfterFunc(time.Until(t), func() { close(passed) })
}

func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && d.timer.Stop() {
		d.timer = nil // a timer that fired has closed passed: set waits for it
	}
}

func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.passed
}
