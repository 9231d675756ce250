package command

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// maxMsgSize is the largest answer the CLI accepts (a big task list).
const maxMsgSize = 64 << 20

// Client is a connection to one daemon's control socket.
type Client struct {
	Host    string // normalized, "unix:///path"
	Control api.ControlClient
	Local   api.LocalNodeClient
	Logs    api.LogsClient

	conn *grpc.ClientConn
	dial *dialState
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// ParseHost turns -H/SHOAL_HOST into a socket path and the normalized
// "unix://" address. A plain path is accepted.
func ParseHost(host string) (path, normalized string, err error) {
	switch {
	case strings.HasPrefix(host, "unix://"):
		path = strings.TrimPrefix(host, "unix://")
	case strings.Contains(host, "://"):
		scheme, _, _ := strings.Cut(host, "://")
		return "", "", fmt.Errorf("unsupported protocol scheme %q in host %q: shoal talks to its daemon over a unix socket (unix:///path)", scheme, host)
	default:
		path = host
	}
	if path == "" {
		return "", "", fmt.Errorf("invalid host %q: missing socket path", host)
	}
	return path, "unix://" + path, nil
}

// dialState remembers whether dialing the socket ever worked, so that an
// Unavailable answer can be told apart from a daemon that is not there.
type dialState struct {
	mu        sync.Mutex
	connected bool
	lastErr   error
}

func (d *dialState) record(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil {
		d.connected = true
		d.lastErr = nil
		return
	}
	d.lastErr = err
}

func (d *dialState) failed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.connected && d.lastErr != nil
}

// Dial prepares a client for the daemon at host. Nothing is sent until the
// first call. Every unary call without a deadline gets timeout.
func Dial(host string, timeout time.Duration) (*Client, error) {
	path, normalized, err := ParseHost(host)
	if err != nil {
		return nil, err
	}
	ds := &dialState{}
	dialer := func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "unix", path)
		ds.record(err)
		return conn, err
	}
	m := &mapper{host: normalized, dial: ds, timeout: timeout}
	conn, err := grpc.NewClient("passthrough:///shoal",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(dialer),
		grpc.WithUnaryInterceptor(m.unary),
		grpc.WithStreamInterceptor(m.stream),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("invalid host %q: %w", host, err)
	}
	return &Client{
		Host:    normalized,
		Control: api.NewControlClient(conn),
		Local:   api.NewLocalNodeClient(conn),
		Logs:    api.NewLogsClient(conn),
		conn:    conn,
		dial:    ds,
	}, nil
}

// mapper applies deadlines and turns gRPC errors into the messages users see.
type mapper struct {
	host    string
	dial    *dialState
	timeout time.Duration
}

func (m *mapper) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	callCtx := ctx
	if _, ok := ctx.Deadline(); !ok && m.timeout > 0 {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithTimeout(ctx, m.timeout)
		defer cancel()
	}
	err := invoker(callCtx, method, req, reply, cc, opts...)
	return m.mapErr(ctx, callCtx, err)
}

func (m *mapper) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, m.mapErr(ctx, ctx, err)
	}
	return &mappedStream{ClientStream: s, m: m, ctx: ctx}, nil
}

type mappedStream struct {
	grpc.ClientStream
	m   *mapper
	ctx context.Context
}

func (s *mappedStream) RecvMsg(msg any) error {
	err := s.ClientStream.RecvMsg(msg)
	if err == nil || errors.Is(err, ioEOF) {
		return err
	}
	return s.m.mapErr(s.ctx, s.ctx, err)
}

// mapErr classifies a call's error: the user's own cancellation, the daemon
// not being there, a call that ran out of time, or the daemon's answer.
func (m *mapper) mapErr(parent, callCtx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if parent.Err() != nil {
		return parent.Err()
	}
	code := status.Code(err)
	if code == codes.Unavailable && m.dial.failed() {
		return &ConnectError{Host: m.host}
	}
	if code == codes.DeadlineExceeded && callCtx.Err() != nil {
		return fmt.Errorf("the shoal daemon at %s did not answer within %s", m.host, m.timeout)
	}
	if code == codes.Canceled && callCtx.Err() != nil {
		return callCtx.Err()
	}
	return &DaemonError{Err: errdefs.FromGRPC(err)}
}
