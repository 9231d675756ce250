package command

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

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
	Stats   api.StatsClient
	Watch   api.WatchClient
	Volumes api.VolumesClient // this node's local volumes
	// Registry is the local node's (what an image tag points to).
	Registry api.RegistryClient

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
		// Pages of a long list are 2 MiB: a window that holds a whole
		// page spares the round trips of flow control on the socket.
		grpc.WithInitialWindowSize(4<<20), grpc.WithInitialConnWindowSize(8<<20),
	)
	if err != nil {
		return nil, fmt.Errorf("invalid host %q: %w", host, err)
	}
	return &Client{
		Host:     normalized,
		Control:  api.NewControlClient(conn),
		Local:    api.NewLocalNodeClient(conn),
		Logs:     api.NewLogsClient(conn),
		Stats:    api.NewStatsClient(conn),
		Watch:    api.NewWatchClient(conn),
		Registry: api.NewRegistryClient(conn),
		Volumes:  api.NewVolumesClient(conn),
		conn:     conn,
		dial:     ds,
	}, nil
}

// mapper applies deadlines and turns gRPC errors into the messages users see.
type mapper struct {
	host    string
	dial    *dialState
	timeout time.Duration
}

func (m *mapper) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if msg, ok := req.(proto.Message); ok {
		if err := checkText(msg); err != nil {
			return err
		}
	}
	if err := m.invoke(ctx, method, req, reply, cc, invoker, opts...); err != nil {
		return err
	}
	return m.followPages(ctx, method, req, reply, cc, invoker, opts...)
}

// invoke makes one call with the default deadline and maps its error.
func (m *mapper) invoke(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	callCtx := ctx
	if _, ok := ctx.Deadline(); !ok && m.timeout > 0 {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithTimeout(ctx, m.timeout)
		defer cancel()
	}
	err := invoker(callCtx, method, req, reply, cc, opts...)
	return m.mapErr(ctx, callCtx, method, err)
}

// followPages fetches the rest of a paged list (a reply with a
// next_page_token) and merges every page into reply, so that commands see
// the whole list. Each page is a call of its own, with its own deadline.
func (m *mapper) followPages(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	out, ok := reply.(proto.Message)
	in, ok2 := req.(proto.Message)
	if !ok || !ok2 {
		return nil
	}
	next := out.ProtoReflect().Descriptor().Fields().ByName("next_page_token")
	tokenField := in.ProtoReflect().Descriptor().Fields().ByName("page_token")
	if next == nil || tokenField == nil {
		return nil
	}
	seen := map[string]bool{}
	for {
		token := out.ProtoReflect().Get(next).String()
		if token == "" {
			return nil
		}
		if seen[token] {
			return fmt.Errorf("the shoal daemon at %s returned the same page of %s twice; giving up", m.host, method)
		}
		seen[token] = true
		pageReq := proto.Clone(in)
		pageReq.ProtoReflect().Set(tokenField, protoreflect.ValueOfString(token))
		part := out.ProtoReflect().New().Interface()
		if err := m.invoke(ctx, method, pageReq, part, cc, invoker, opts...); err != nil {
			return err
		}
		out.ProtoReflect().Clear(next)
		proto.Merge(out, part)
	}
}

func (m *mapper) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, m.mapErr(ctx, ctx, method, err)
	}
	return &mappedStream{ClientStream: s, m: m, ctx: ctx, method: method}, nil
}

type mappedStream struct {
	grpc.ClientStream
	m      *mapper
	ctx    context.Context
	method string
}

func (s *mappedStream) RecvMsg(msg any) error {
	err := s.ClientStream.RecvMsg(msg)
	if err == nil || errors.Is(err, ioEOF) {
		return err
	}
	return s.m.mapErr(s.ctx, s.ctx, s.method, err)
}

// mapErr classifies a call's error: the user's own cancellation, the daemon
// not being there, a connection lost during the call, a call that ran out
// of time, or the daemon's answer. When the call may have changed something
// and its fate is unknown, the message says so.
func (m *mapper) mapErr(parent, callCtx context.Context, method string, err error) error {
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
	_, hasDeadline := callCtx.Deadline()
	msg := status.Convert(err).Message()
	if errors.Is(callCtx.Err(), context.DeadlineExceeded) || hasDeadline && (code == codes.Canceled || code == codes.DeadlineExceeded &&
		(msg == context.DeadlineExceeded.Error() || strings.Contains(msg, "RST_STREAM"))) {
		// Our deadline: the daemon, told of it, may notice first and
		// cancel the call (RST_STREAM CANCEL) before our timer fires.
		return fmt.Errorf("the shoal daemon at %s did not answer within %s: %s", m.host, m.timeout, errdefs.Outcome(method, true))
	}
	if code == codes.Canceled && callCtx.Err() != nil {
		return callCtx.Err()
	}
	if f, ok := errdefs.Transport(err); ok {
		return &TransportError{Host: m.host, Fault: f, Method: method, Err: errdefs.FromGRPC(err)}
	}
	derr := errdefs.FromGRPC(err)
	if code == codes.DeadlineExceeded && !ReadOnlyMethod(method) && !strings.Contains(derr.Error(), "applied") {
		// The daemon gave up waiting (for a commit, for the leader): the
		// write may still go through.
		derr = errdefs.Newf(errdefs.ErrDeadlineExceeded, "%s: %s", derr.Error(), errdefs.Outcome(method, true))
	}
	return &DaemonError{Err: derr}
}

// ReadOnlyMethod reports whether a gRPC method only reads.
func ReadOnlyMethod(method string) bool { return errdefs.ReadOnly(method) }

// CheckText is checkText for a request a command checks before other
// calls (service create asks the registry before CreateService).
func CheckText(req proto.Message) error { return checkText(req) }

// checkText refuses a request with text that is not UTF-8 before it is
// sent (protobuf would refuse to encode it, naming no field), naming the
// flag or argument it came from.
func checkText(req proto.Message) error {
	path, v, bad := api.InvalidUTF8(req)
	if !bad {
		return nil
	}
	return fmt.Errorf("%s %s is not valid UTF-8: shoal sends text as UTF-8; fix the encoding of that value (request field %s)", textSource(path), api.Echo(v), path)
}

var indexRE = regexp.MustCompile(`\[[^]]*\]| \(a key\)`)

// textSources name the flag or argument behind a request field.
var textSources = map[string]string{
	"spec.annotations.name":                  "the name",
	"spec.annotations.labels":                "the label (--label)",
	"spec.task.container.labels":             "the container label (--container-label)",
	"spec.task.container.env":                "the environment variable (--env)",
	"spec.task.container.command":            "the entrypoint (--entrypoint)",
	"spec.task.container.args":               "the command or argument",
	"spec.task.container.image":              "the image",
	"spec.task.container.hostname":           "the hostname (--hostname)",
	"spec.task.container.dir":                "the working directory (--workdir)",
	"spec.task.container.user":               "the user (--user)",
	"spec.task.container.groups":             "the group (--group)",
	"spec.task.container.mounts.source":      "the mount source (--mount)",
	"spec.task.container.mounts.target":      "the mount target (--mount)",
	"spec.task.container.healthcheck.test":   "the health command (--health-cmd)",
	"spec.task.container.hosts":              "the host entry (--host)",
	"spec.task.container.stop_signal":        "the stop signal (--stop-signal)",
	"spec.task.placement.constraints":        "the constraint (--constraint)",
	"spec.task.container.dns_config.search":  "the DNS search domain (--dns-search)",
	"spec.task.container.dns_config.options": "the DNS option (--dns-option)",
}

func textSource(path string) string {
	if s, ok := textSources[indexRE.ReplaceAllString(path, "")]; ok {
		return s
	}
	return "the value of request field " + path
}
