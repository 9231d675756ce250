package daemontest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/registry"
	"github.com/shoal-project/shoal/manager"
	"github.com/shoal-project/shoal/manager/controlapi"
	"github.com/shoal-project/shoal/manager/logbroker"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Call is one recorded request.
type Call struct {
	Method string // short name, e.g. "CreateService"
	Req    proto.Message
}

// Daemon is the control plane of one manager in the test process: the real
// Control API and log broker on a store, served on a unix socket.
type Daemon struct {
	// Socket is the unix socket the CLI dials (tests may point it elsewhere
	// to show a daemon that is not there).
	Socket string
	// Store is the manager's store: the state the Control API reads and
	// writes.
	Store *raftstore.Store
	// Clock is the managers' clock (timestamps of writes, log deadlines).
	Clock *clockwork.FakeClock

	// Mu guards the fields below while the daemon serves.
	Mu sync.Mutex
	// Members is the raft membership the Control API shows as MANAGER
	// STATUS; LoadCluster sets node1 (leader) and node2.
	Members []raftstore.MemberStatus
	// InfoResp, InitResp and JoinResp are the local node's answers.
	InfoResp *api.InfoResponse
	InitResp *api.InitResponse
	JoinResp *api.JoinResponse
	// UnlockKey is the key this node, when locked, needs.
	UnlockKey string
	// Errors makes every call of a method fail; ErrorsOnce fail the next
	// calls of a method, one error each (the failures a network or a
	// racing writer would cause).
	Errors     map[string]error
	ErrorsOnce map[string][]error

	logNodes []string          // the nodes whose log agents run
	logLines []*api.LogMessage // what they publish

	before  map[string]func(n int, req proto.Message)
	calls   []Call
	counts  map[string]int
	nextID  int
	prop    *proposer
	logs    *logAgents
	grpcSrv *grpc.Server
	// registry is the image registry behind every registry host, and t
	// the test LoadCluster pushes FixtureImages for.
	registry *imageRegistry
	t        testing.TB
}

// Start serves a new daemon with an empty store on a socket in a fresh
// directory and stops it when the test ends.
func Start(t testing.TB) *Daemon {
	t.Helper()
	// Socket paths are limited to ~108 bytes; t.TempDir() can be longer.
	dir, err := os.MkdirTemp("", "shoaltest")
	if err != nil {
		t.Fatal(err)
	}
	clock := clockwork.NewFakeClockAt(Now)
	store := raftstore.NewStore(clock)
	d := &Daemon{
		Socket:     filepath.Join(dir, "shoal.sock"),
		Store:      store,
		Clock:      clock,
		Errors:     map[string]error{},
		ErrorsOnce: map[string][]error{},
		before:     map[string]func(int, proto.Message){},
		counts:     map[string]int{},
		prop:       &proposer{s: store},
		registry:   startRegistry(t),
		t:          t,
	}
	store.SetProposer(d.prop)
	lis, err := net.Listen("unix", d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	broker := logbroker.New(store, clock, nil)
	ctx, cancel := context.WithCancel(context.Background())
	brokerDone := make(chan struct{})
	go func() { defer close(brokerDone); _ = broker.Run(ctx) }()

	d.grpcSrv = grpc.NewServer(
		grpc.MaxRecvMsgSize(api.MaxMessageBytes), grpc.MaxSendMsgSize(api.MaxMessageBytes),
		grpc.ChainUnaryInterceptor(d.unary), grpc.ChainStreamInterceptor(d.stream))
	api.RegisterControlServer(d.grpcSrv, controlapi.New(store, membership{d}, clock, controlapi.WithIDs(d.newID)))
	api.RegisterLogsServer(d.grpcSrv, broker)
	api.RegisterLogBrokerServer(d.grpcSrv, broker)
	api.RegisterLocalNodeServer(d.grpcSrv, &localNode{d: d})
	api.RegisterWatchServer(d.grpcSrv, manager.NewWatchServer(store))
	api.RegisterRegistryServer(d.grpcSrv, registry.NewServer(d.registry.options()))
	served := make(chan struct{})
	go func() { defer close(served); _ = d.grpcSrv.Serve(lis) }()
	d.logs = startLogAgents(ctx, d)
	t.Cleanup(func() {
		cancel()
		d.logs.wait()
		d.grpcSrv.Stop()
		<-served
		<-brokerDone
		_ = os.RemoveAll(dir)
	})
	return d
}

// Host is the -H value that reaches this daemon.
func (d *Daemon) Host() string { return "unix://" + d.Socket }

// membership shows the daemon's Members to the Control API.
type membership struct{ d *Daemon }

var _ controlapi.Membership = membership{}

func (m membership) Members() []raftstore.MemberStatus {
	m.d.Mu.Lock()
	defer m.d.Mu.Unlock()
	return append([]raftstore.MemberStatus(nil), m.d.Members...)
}

// newID returns the n-th new object's ID: 25 base-36 characters, as
// random IDs are, distinct in their first 12 (what lists show).
func (d *Daemon) newID() string {
	d.Mu.Lock()
	defer d.Mu.Unlock()
	d.nextID++
	return fmt.Sprintf("n%03dabcdefghijklmnopqrstu", d.nextID)
}

// NewID is the ID the n-th object created through the Control API gets
// (n from 1).
func NewID(n int) string { return fmt.Sprintf("n%03dabcdefghijklmnopqrstu", n) }

// Before makes f run before each call of method (short name), with the
// number of earlier calls (from 0) and the request: tests play the
// orchestrator, scheduler and workers there, writing to Store what they
// would have written by then. One hook per method; nil removes it.
func (d *Daemon) Before(method string, f func(n int, req proto.Message)) {
	d.Mu.Lock()
	defer d.Mu.Unlock()
	if f == nil {
		delete(d.before, method)
		return
	}
	d.before[method] = f
}

func short(full string) string { return full[strings.LastIndex(full, "/")+1:] }

// unary records each call, injects the configured errors, runs the test's
// hook, and maps errors to gRPC codes as the daemon's interceptor does.
func (d *Daemon) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := d.record(short(info.FullMethod), req.(proto.Message)); err != nil {
		return nil, injected(err)
	}
	resp, err := handler(ctx, req)
	return resp, errdefs.ToGRPC(err)
}

func (d *Daemon) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	method := short(info.FullMethod)
	md, _ := metadata.FromIncomingContext(ss.Context())
	if method == "SubscribeLogs" && len(md.Get(probeKey)) == 0 {
		return errdefs.ToGRPC(handler(srv, &recordingStream{ServerStream: ss, d: d}))
	}
	return errdefs.ToGRPC(handler(srv, &agentStream{ServerStream: ss}))
}

// recordingStream records the first message a client stream receives (the
// request of a server-streaming call).
type recordingStream struct {
	grpc.ServerStream
	d    *Daemon
	done bool
}

func (s *recordingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if !s.done {
		s.done = true
		return injected(s.d.record("SubscribeLogs", m.(proto.Message)))
	}
	return nil
}

// injected is an error a test injected, as the client will see it: a gRPC
// status as it is, an errdefs error as the daemon maps it.
func injected(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	return errdefs.ToGRPC(err)
}

func (d *Daemon) record(method string, req proto.Message) error {
	d.Mu.Lock()
	d.calls = append(d.calls, Call{Method: method, Req: proto.Clone(req)})
	var err error
	if errs := d.ErrorsOnce[method]; len(errs) > 0 {
		d.ErrorsOnce[method] = errs[1:]
		err = errs[0]
	} else {
		err = d.Errors[method]
	}
	n := d.counts[method]
	d.counts[method]++
	hook := d.before[method]
	d.Mu.Unlock()
	if err != nil {
		return err
	}
	if hook != nil {
		hook(n, req)
	}
	return nil
}

// Calls returns the requests received so far.
func (d *Daemon) Calls() []Call {
	d.Mu.Lock()
	defer d.Mu.Unlock()
	return append([]Call(nil), d.calls...)
}

// Requests returns the requests of one method.
func (d *Daemon) Requests(method string) []proto.Message {
	var out []proto.Message
	for _, c := range d.Calls() {
		if c.Method == method {
			out = append(out, c.Req)
		}
	}
	return out
}

// Methods lists the methods called, in order.
func (d *Daemon) Methods() []string {
	var out []string
	for _, c := range d.Calls() {
		out = append(out, c.Method)
	}
	return out
}

// proposer applies each transaction at once, in order, as the standalone
// store does; its index goes on from the fixture's so that versions only
// grow.
type proposer struct {
	mu    sync.Mutex
	s     *raftstore.Store
	index uint64
}

func (p *proposer) Propose(_ context.Context, cmd raftstore.Command, payload []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.index++
	return p.s.ApplyProposal(p.index, cmd, payload)
}

// restore replaces the store's content, keeping objects' versions and
// times, at the store's current version (or at least min).
func (p *proposer) restore(objs []raftstore.Object, min uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.index = max(p.index, p.s.Version(), min)
	return p.s.Restore(p.index, objs)
}

// deadline bounds the waits of the test daemon's helpers.
const deadline = 10 * time.Second
