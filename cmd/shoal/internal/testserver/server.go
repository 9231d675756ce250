// Package testserver is an in-process fake shoald for the CLI's tests: a real
// gRPC server on a unix socket serving LocalNode, Control and Logs from canned
// objects, recording every request so tests can assert the flag -> request
// mapping, with hooks to script the converge display poll by poll.
package testserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

// Call is one recorded request.
type Call struct {
	Method string // short name, e.g. "CreateService"
	Req    proto.Message
}

// Server is the fake daemon. Tests fill its exported fields before running
// commands and read Calls afterwards. Fields are guarded by Mu while the
// server runs.
type Server struct {
	api.UnimplementedControlServer
	api.UnimplementedLocalNodeServer
	api.UnimplementedLogsServer

	Socket string

	Mu       sync.Mutex
	InfoResp *api.InfoResponse
	InitResp *api.InitResponse
	JoinResp *api.JoinResponse
	Nodes    []*api.Node
	Services []*api.Service
	Counts   map[string]*api.ServiceCounts
	Tasks    []*api.Task
	Clusters []*api.Cluster
	Secrets  []*api.Secret
	Configs  []*api.Config
	Networks []*api.Network
	// LogMessages are sent in order to every SubscribeLogs.
	LogMessages []*api.SubscribeLogsMessage
	// Warnings are returned by CreateService and UpdateService.
	Warnings []string
	// UnlockKey is what GetUnlockKey returns and Unlock accepts; autolock
	// on, off and rotations in UpdateCluster change it.
	UnlockKey string

	// Errors makes every call of a method fail; ErrorsOnce fail the next
	// calls of a method, one error each.
	Errors     map[string]error
	ErrorsOnce map[string][]error

	// GetServiceHook rewrites the service returned by the n-th GetService
	// (n from 0); ListTasksHook replaces the tasks of the n-th ListTasks.
	GetServiceHook func(n int, svc *api.Service) *api.Service
	ListTasksHook  func(n int, req *api.ListTasksRequest) []*api.Task

	calls   []Call
	counts  map[string]int
	nextID  int
	grpcSrv *grpc.Server
}

// Start serves a new fake daemon on a socket in a fresh directory and stops
// it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	// Socket paths are limited to ~108 bytes; t.TempDir() can be longer.
	dir, err := os.MkdirTemp("", "shoaltest")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{
		Socket:     filepath.Join(dir, "shoal.sock"),
		Errors:     map[string]error{},
		ErrorsOnce: map[string][]error{},
		Counts:     map[string]*api.ServiceCounts{},
		counts:     map[string]int{},
	}
	lis, err := net.Listen("unix", s.Socket)
	if err != nil {
		t.Fatal(err)
	}
	s.grpcSrv = grpc.NewServer(grpc.UnaryInterceptor(s.intercept))
	api.RegisterControlServer(s.grpcSrv, s)
	api.RegisterLocalNodeServer(s.grpcSrv, s)
	api.RegisterLogsServer(s.grpcSrv, s)
	go func() { _ = s.grpcSrv.Serve(lis) }()
	t.Cleanup(func() {
		s.grpcSrv.Stop()
		_ = os.RemoveAll(dir)
	})
	return s
}

// Host is the -H value that reaches this server.
func (s *Server) Host() string { return "unix://" + s.Socket }

func short(full string) string { return full[strings.LastIndex(full, "/")+1:] }

// intercept records each unary call and injects configured errors.
func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := short(info.FullMethod)
	if err := s.record(method, req.(proto.Message)); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (s *Server) record(method string, req proto.Message) error {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	s.calls = append(s.calls, Call{Method: method, Req: proto.Clone(req)})
	if errs := s.ErrorsOnce[method]; len(errs) > 0 {
		s.ErrorsOnce[method] = errs[1:]
		return errs[0]
	}
	return s.Errors[method]
}

// Calls returns the requests received so far.
func (s *Server) Calls() []Call {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Requests returns the requests of one method.
func (s *Server) Requests(method string) []proto.Message {
	var out []proto.Message
	for _, c := range s.Calls() {
		if c.Method == method {
			out = append(out, c.Req)
		}
	}
	return out
}

// Methods lists the methods called, in order.
func (s *Server) Methods() []string {
	var out []string
	for _, c := range s.Calls() {
		out = append(out, c.Method)
	}
	return out
}

// newID returns a deterministic 25-character ID.
func (s *Server) newID(prefix string) string {
	s.nextID++
	id := fmt.Sprintf("%s%d", prefix, s.nextID)
	return id + strings.Repeat("0", max(0, 25-len(id)))
}

func notFound(kind, ref string) error {
	return status.Errorf(codes.NotFound, "%s %s not found", kind, ref)
}

func conflict() error { return status.Error(codes.Aborted, "update out of sequence") }

func clone[T proto.Message](m T) T { return proto.Clone(m).(T) }

// count returns how many times m was counted before, and counts it.
func (s *Server) count(m string) int { n := s.counts[m]; s.counts[m]++; return n }
