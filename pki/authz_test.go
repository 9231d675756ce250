package pki

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// caService answers with the caller identity the Authorizer attached.
type caService struct {
	api.UnimplementedCAServer
	root []byte
}

func (s *caService) GetRootCACertificate(context.Context, *api.GetRootCACertificateRequest) (*api.GetRootCACertificateResponse, error) {
	return &api.GetRootCACertificateResponse{Certificate: s.root}, nil
}

func (s *caService) IssueNodeCertificate(ctx context.Context, _ *api.IssueNodeCertificateRequest) (*api.IssueNodeCertificateResponse, error) {
	id, ok := IdentityFromContext(ctx)
	if !ok {
		return &api.IssueNodeCertificateResponse{NodeId: "anonymous"}, nil
	}
	return &api.IssueNodeCertificateResponse{NodeId: id.NodeID, Role: id.Role}, nil
}

func (s *caService) RenewNodeCertificate(ctx context.Context, _ *api.RenewNodeCertificateRequest) (*api.RenewNodeCertificateResponse, error) {
	id, ok := IdentityFromContext(ctx)
	if !ok {
		return nil, errors.New("handler reached without an identity")
	}
	return &api.RenewNodeCertificateResponse{Certificate: []byte(id.NodeID), Role: id.Role}, nil
}

type watchService struct{ api.UnimplementedWatchServer }

func (watchService) Watch(_ *api.WatchRequest, ss grpc.ServerStreamingServer[api.WatchMessage]) error {
	if _, ok := IdentityFromContext(ss.Context()); !ok {
		return errors.New("stream handler reached without an identity")
	}
	return ss.Send(&api.WatchMessage{Version: 42})
}

// managerOnly lists the services only managers may call in the test policy.
var managerOnly = []*grpc.ServiceDesc{&api.Control_ServiceDesc, &api.Raft_ServiceDesc, &api.Watch_ServiceDesc}

type authzEnv struct {
	ca       *RootCA
	addr     string
	serverKP *KeyPair
}

// startServer runs a real gRPC server over TLS on a loopback listener, as
// manager "mgr1" of testCluster, with the test policy. Node "gone" is
// removed. LogBroker is registered but has no policy.
func startServer(t *testing.T) *authzEnv {
	t.Helper()
	ca := newTestCA(t, nil) // real clock: crypto/tls checks validity against it
	server := issue(t, ca, "mgr1", api.NodeRole_MANAGER, testCluster, 0)
	policy := map[string][]api.NodeRole{
		api.CA_RenewNodeCertificate_FullMethodName: {api.NodeRole_WORKER, api.NodeRole_MANAGER},
	}
	for _, m := range MethodNames(managerOnly...) {
		policy[m] = []api.NodeRole{api.NodeRole_MANAGER}
	}
	for _, m := range MethodNames(&api.Dispatcher_ServiceDesc) {
		policy[m] = []api.NodeRole{api.NodeRole_WORKER, api.NodeRole_MANAGER}
	}
	authz, err := NewAuthorizer(AuthorizerConfig{
		ClusterID:       testCluster,
		Policy:          policy,
		Unauthenticated: []string{api.CA_GetRootCACertificate_FullMethodName, api.CA_IssueNodeCertificate_FullMethodName},
		IsRemoved:       func(id string) bool { return id == "gone" },
		IsDemoted:       func(id string) bool { return id == "demoted" },
	})
	if err != nil {
		t.Fatalf("NewAuthorizer: %v", err)
	}
	if got := authz.Uncovered(&api.LogBroker_ServiceDesc, &api.CA_ServiceDesc); len(got) != 2 || !strings.Contains(got[0], "LogBroker") {
		t.Fatalf("Uncovered = %v, want the two LogBroker methods", got)
	}
	kp := server.keyPair(t)
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(ServerConfig(kp, ca.Pool(), nil))),
		grpc.ChainUnaryInterceptor(authz.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(authz.StreamServerInterceptor()),
	)
	api.RegisterCAServer(srv, &caService{root: ca.CertPEM()})
	api.RegisterWatchServer(srv, watchService{})
	api.RegisterControlServer(srv, api.UnimplementedControlServer{})
	api.RegisterRaftServer(srv, api.UnimplementedRaftServer{})
	api.RegisterDispatcherServer(srv, api.UnimplementedDispatcherServer{})
	api.RegisterLogBrokerServer(srv, api.UnimplementedLogBrokerServer{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); wg.Wait() })
	return &authzEnv{ca: ca, addr: lis.Addr().String(), serverKP: kp}
}

func (e *authzEnv) dial(t *testing.T, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// client dials as a node holding a certificate of the test CA.
func (e *authzEnv) client(t *testing.T, nodeID string, role api.NodeRole, cluster string) *grpc.ClientConn {
	t.Helper()
	kp := issue(t, e.ca, nodeID, role, cluster, 0).keyPair(t)
	return e.dial(t, ClientConfig(kp, e.ca.Pool(), ManagerServerName))
}

// rogue dials with any key pair and no client-side checks beyond the root.
func (e *authzEnv) rogue(t *testing.T, kp *KeyPair) *grpc.ClientConn {
	t.Helper()
	return e.dial(t, &tls.Config{
		Certificates: []tls.Certificate{*kp.Certificate()},
		RootCAs:      e.ca.Pool(),
		ServerName:   ManagerServerName,
		MinVersion:   tls.VersionTLS12,
	})
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func renew(t *testing.T, conn *grpc.ClientConn) (*api.RenewNodeCertificateResponse, codes.Code) {
	resp, err := api.NewCAClient(conn).RenewNodeCertificate(callCtx(t), &api.RenewNodeCertificateRequest{})
	return resp, status.Code(err)
}

func watchCode(t *testing.T, conn *grpc.ClientConn) codes.Code {
	stream, err := api.NewWatchClient(conn).Watch(callCtx(t), &api.WatchRequest{})
	if err != nil {
		return status.Code(err)
	}
	msg, err := stream.Recv()
	if err == nil && msg.GetVersion() != 42 {
		t.Fatalf("unexpected watch message %v", msg)
	}
	return status.Code(err)
}

// invoke calls any method with an empty message and returns the code.
func invoke(t *testing.T, conn *grpc.ClientConn, method string, stream bool) codes.Code {
	ctx := callCtx(t)
	if !stream {
		return status.Code(conn.Invoke(ctx, method, &emptypb.Empty{}, &emptypb.Empty{}))
	}
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method)
	if err != nil {
		return status.Code(err)
	}
	_ = s.SendMsg(&emptypb.Empty{})
	_ = s.CloseSend()
	err = s.RecvMsg(&emptypb.Empty{})
	if err == io.EOF {
		return codes.OK
	}
	return status.Code(err)
}

func isStream(d *grpc.ServiceDesc, method string) bool {
	return slices.ContainsFunc(d.Streams, func(s grpc.StreamDesc) bool { return "/"+d.ServiceName+"/"+s.StreamName == method })
}

func TestAuthorizerOverGRPC(t *testing.T) {
	e := startServer(t)

	t.Run("allowed roles", func(t *testing.T) {
		resp, code := renew(t, e.client(t, "w1", api.NodeRole_WORKER, testCluster))
		if code != codes.OK || string(resp.GetCertificate()) != "w1" || resp.GetRole() != api.NodeRole_WORKER {
			t.Fatalf("worker renew: %v %v", resp, code)
		}
		mgr := e.client(t, "m2", api.NodeRole_MANAGER, testCluster)
		if resp, code := renew(t, mgr); code != codes.OK || string(resp.GetCertificate()) != "m2" {
			t.Fatalf("manager renew: %v %v", resp, code)
		}
		if code := watchCode(t, mgr); code != codes.OK {
			t.Fatalf("manager watch (stream): %v", code)
		}
	})

	t.Run("demoted manager keeps only a worker's rights", func(t *testing.T) {
		old := e.client(t, "demoted", api.NodeRole_MANAGER, testCluster)
		if code := watchCode(t, old); code != codes.PermissionDenied {
			t.Fatalf("demoted manager watch: %v, want PermissionDenied", code)
		}
		if resp, code := renew(t, old); code != codes.OK || resp.GetRole() != api.NodeRole_WORKER {
			t.Fatalf("demoted manager renew: %v %v, want OK as a worker", resp, code)
		}
	})

	t.Run("wrong role", func(t *testing.T) {
		worker := e.client(t, "w1", api.NodeRole_WORKER, testCluster)
		if code := watchCode(t, worker); code != codes.PermissionDenied {
			t.Fatalf("worker watch (stream): %v, want PermissionDenied", code)
		}
		_, err := api.NewControlClient(worker).ListNodes(callCtx(t), &api.ListNodesRequest{})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "role not allowed") {
			t.Fatalf("worker ListNodes: %v", err)
		}
	})

	// Every manager-only method, enumerated from the descriptors: a worker
	// is refused; a manager passes the interceptor (and meets the
	// Unimplemented handler).
	t.Run("every manager-only method", func(t *testing.T) {
		worker := e.client(t, "w1", api.NodeRole_WORKER, testCluster)
		mgr := e.client(t, "m2", api.NodeRole_MANAGER, testCluster)
		n := 0
		for _, d := range managerOnly {
			for _, m := range MethodNames(d) {
				if m == api.Watch_Watch_FullMethodName {
					continue // implemented; covered above
				}
				n++
				if code := invoke(t, worker, m, isStream(d, m)); code != codes.PermissionDenied {
					t.Errorf("worker %s: %v, want PermissionDenied", m, code)
				}
				if code := invoke(t, mgr, m, isStream(d, m)); code != codes.Unimplemented {
					t.Errorf("manager %s: %v, want Unimplemented (authorized)", m, code)
				}
			}
		}
		if n < 30 {
			t.Fatalf("only %d methods enumerated", n)
		}
	})

	t.Run("missing policy", func(t *testing.T) {
		mgr := e.client(t, "m2", api.NodeRole_MANAGER, testCluster)
		for _, m := range MethodNames(&api.LogBroker_ServiceDesc) {
			if code := invoke(t, mgr, m, isStream(&api.LogBroker_ServiceDesc, m)); code != codes.PermissionDenied {
				t.Errorf("%s without policy: %v, want PermissionDenied", m, code)
			}
		}
	})

	t.Run("no certificate", func(t *testing.T) {
		anon := e.dial(t, ClientConfig(nil, e.ca.Pool(), ManagerServerName))
		if _, code := renew(t, anon); code != codes.Unauthenticated {
			t.Fatalf("renew without cert: %v, want Unauthenticated", code)
		}
		if code := invoke(t, anon, api.Control_ListNodes_FullMethodName, false); code != codes.Unauthenticated {
			t.Fatalf("ListNodes without cert: %v", code)
		}
		resp, err := api.NewCAClient(anon).IssueNodeCertificate(callCtx(t), &api.IssueNodeCertificateRequest{})
		if err != nil || resp.GetNodeId() != "anonymous" {
			t.Fatalf("open method without cert: %v %v", resp, err)
		}
	})

	t.Run("identity on open method", func(t *testing.T) {
		resp, err := api.NewCAClient(e.client(t, "w1", api.NodeRole_WORKER, testCluster)).
			IssueNodeCertificate(callCtx(t), &api.IssueNodeCertificateRequest{})
		if err != nil || resp.GetNodeId() != "w1" {
			t.Fatalf("open method with cert: %v %v", resp, err)
		}
		// A removed node's certificate is ignored there, not trusted.
		resp, err = api.NewCAClient(e.client(t, "gone", api.NodeRole_MANAGER, testCluster)).
			IssueNodeCertificate(callCtx(t), &api.IssueNodeCertificateRequest{})
		if err != nil || resp.GetNodeId() != "anonymous" {
			t.Fatalf("open method with removed cert: %v %v", resp, err)
		}
	})

	t.Run("other cluster", func(t *testing.T) {
		kp := issue(t, e.ca, "m9", api.NodeRole_MANAGER, "cluster2", 0).keyPair(t)
		_, err := api.NewCAClient(e.rogue(t, kp)).RenewNodeCertificate(callCtx(t), &api.RenewNodeCertificateRequest{})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "not of this cluster") {
			t.Fatalf("other cluster: %v", err)
		}
		// Our own client config refuses a server of another cluster.
		if _, code := renew(t, e.dial(t, ClientConfig(kp, e.ca.Pool(), ManagerServerName))); code != codes.Unavailable {
			t.Fatalf("client of cluster2 to a cluster1 server: %v, want Unavailable (handshake refused)", code)
		}
	})

	t.Run("removed node", func(t *testing.T) {
		_, err := api.NewCAClient(e.client(t, "gone", api.NodeRole_MANAGER, testCluster)).
			RenewNodeCertificate(callCtx(t), &api.RenewNodeCertificateRequest{})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "removed") {
			t.Fatalf("removed node: %v", err)
		}
	})

	t.Run("foreign CA", func(t *testing.T) {
		foreign := newTestCA(t, nil)
		kp := issue(t, foreign, "w1", api.NodeRole_MANAGER, testCluster, 0).keyPair(t)
		if _, code := renew(t, e.rogue(t, kp)); code == codes.OK {
			t.Fatal("certificate of a foreign CA accepted")
		}
		// Nor does a client pinned to a foreign root trust the server.
		if _, code := renew(t, e.dial(t, ClientConfig(kp, foreign.Pool(), ManagerServerName))); code != codes.Unavailable {
			t.Fatalf("client pinned to another root: %v, want Unavailable", code)
		}
	})

	t.Run("expired certificate", func(t *testing.T) {
		// Signed by the right CA 100 days ago, for 1 hour.
		past, err := ParseRootCA(e.ca.CertPEM(), mustKeyPEM(t, e.ca), clockwork.NewFakeClockAt(time.Now().Add(-100*24*time.Hour)))
		if err != nil {
			t.Fatal(err)
		}
		kp := issue(t, past, "w1", api.NodeRole_WORKER, testCluster, time.Hour).keyPair(t)
		if _, code := renew(t, e.rogue(t, kp)); code == codes.OK {
			t.Fatal("expired certificate accepted")
		}
	})

	t.Run("server name", func(t *testing.T) {
		kp := issue(t, e.ca, "w1", api.NodeRole_WORKER, testCluster, 0).keyPair(t)
		if _, code := renew(t, e.dial(t, ClientConfig(kp, e.ca.Pool(), "mgr1"))); code != codes.OK {
			t.Fatalf("dial by node ID: %v", code)
		}
		if _, code := renew(t, e.dial(t, ClientConfig(kp, e.ca.Pool(), "mgr2"))); code != codes.Unavailable {
			t.Fatalf("dial expecting another node: %v, want Unavailable", code)
		}
		if _, code := renew(t, e.dial(t, ClientConfig(kp, e.ca.Pool(), WorkerServerName))); code != codes.Unavailable {
			t.Fatalf("dial expecting a worker: %v, want Unavailable", code)
		}
	})
}

func mustKeyPEM(t *testing.T, ca *RootCA) []byte {
	t.Helper()
	k, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The joiner's flow: unverified download of the root, check against the
// token, then calls pinned to that root.
func TestBootstrapJoinFlow(t *testing.T) {
	e := startServer(t)
	token, _ := GenerateJoinToken(e.ca.Digest())
	tok, err := ParseJoinToken(token)
	if err != nil {
		t.Fatal(err)
	}
	boot := e.dial(t, BootstrapClientConfig())
	resp, err := api.NewCAClient(boot).GetRootCACertificate(callCtx(t), &api.GetRootCACertificateRequest{})
	if err != nil {
		t.Fatalf("download root CA: %v", err)
	}
	pinned, err := CheckRootCAForToken(resp.GetCertificate(), tok)
	if err != nil {
		t.Fatalf("CheckRootCAForToken: %v", err)
	}
	joiner := e.dial(t, ClientConfig(nil, pinned.Pool(), ManagerServerName))
	if _, err := api.NewCAClient(joiner).IssueNodeCertificate(callCtx(t), &api.IssueNodeCertificateRequest{Token: token}); err != nil {
		t.Fatalf("IssueNodeCertificate over pinned connection: %v", err)
	}
	// A token for another CA stops the joiner before the secret is sent.
	other := newTestCA(t, nil)
	if _, err := CheckRootCAForToken(resp.GetCertificate(), JoinToken{Digest: other.Digest(), Secret: tok.Secret}); err == nil {
		t.Fatal("root CA accepted for a token of another CA")
	}
}

// Renewal at run time: new handshakes use the swapped certificates on both
// sides, without new configs.
func TestKeyPairSwapAtRunTime(t *testing.T) {
	e := startServer(t)
	client := issue(t, e.ca, "n5", api.NodeRole_WORKER, testCluster, 0).keyPair(t)
	cfg := ClientConfig(client, e.ca.Pool(), ManagerServerName)
	if code := watchCode(t, e.dial(t, cfg)); code != codes.PermissionDenied {
		t.Fatalf("worker watch: %v", code)
	}
	promoted := issue(t, e.ca, "n5", api.NodeRole_MANAGER, testCluster, 0)
	if err := client.Swap(promoted.certPEM, promoted.keyPEM); err != nil {
		t.Fatal(err)
	}
	renewedServer := issue(t, e.ca, "mgr1", api.NodeRole_MANAGER, testCluster, 0)
	if err := e.serverKP.Swap(renewedServer.certPEM, renewedServer.keyPEM); err != nil {
		t.Fatal(err)
	}
	conn := e.dial(t, cfg)
	if code := watchCode(t, conn); code != codes.OK {
		t.Fatalf("promoted watch: %v", code)
	}
	var p peer.Peer
	if _, err := api.NewCAClient(conn).RenewNodeCertificate(callCtx(t), &api.RenewNodeCertificateRequest{}, grpc.Peer(&p)); err != nil {
		t.Fatal(err)
	}
	got := p.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0].SerialNumber
	if got.Cmp(renewedServer.cert.SerialNumber) != 0 {
		t.Fatal("server still presents its old certificate")
	}
}

func TestNewAuthorizerValidates(t *testing.T) {
	m := api.Control_ListNodes_FullMethodName
	bad := map[string]AuthorizerConfig{
		"no cluster":   {Policy: map[string][]api.NodeRole{m: {api.NodeRole_MANAGER}}},
		"no roles":     {ClusterID: "c", Policy: map[string][]api.NodeRole{m: {}}},
		"unknown role": {ClusterID: "c", Policy: map[string][]api.NodeRole{m: {api.NodeRole(9)}}},
		"open and protected": {ClusterID: "c", Policy: map[string][]api.NodeRole{m: {api.NodeRole_MANAGER}},
			Unauthenticated: []string{m}},
	}
	for name, cfg := range bad {
		if _, err := NewAuthorizer(cfg); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: err = %v, want InvalidArgument", name, err)
		}
	}
	// Without TLS peer information every protected call is refused.
	a, err := NewAuthorizer(AuthorizerConfig{ClusterID: "c", Policy: map[string][]api.NodeRole{m: {api.NodeRole_MANAGER}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Authorize(context.Background(), m); errdefs.Code(err) != codes.Unauthenticated {
		t.Errorf("no peer: err = %v", err)
	}
	if _, _, err := a.Authorize(context.Background(), "/x.Y/Z"); !errdefs.IsPermissionDenied(err) {
		t.Errorf("unknown method: err = %v", err)
	}
}

func TestMethodNames(t *testing.T) {
	got := MethodNames(&api.CA_ServiceDesc, &api.Watch_ServiceDesc)
	want := []string{
		api.CA_GetRootCACertificate_FullMethodName,
		api.CA_IssueNodeCertificate_FullMethodName,
		api.CA_RenewNodeCertificate_FullMethodName,
		api.Watch_Watch_FullMethodName,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("MethodNames = %v, want %v", got, want)
	}
}
