package cluster

import (
	"context"
	"crypto/x509"
	"os"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/internal/ids"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/test/lab"
)

// fakeManager serves the CA service with another root CA on the lab's
// Outside namespace and records every call it gets.
type fakeManager struct {
	api.UnimplementedCAServer
	addr   string
	ca     *pki.RootCA
	mu     sync.Mutex
	seen   []string
	secret bool
}

func startFakeManager(t *testing.T, l *lab.Lab, ca *pki.RootCA) *fakeManager {
	t.Helper()
	f := &fakeManager{ca: ca, addr: l.Outside.Addr.String() + ":4242"}
	ln, err := l.Outside.Listen("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	// A certificate a careless joiner that pinned this CA would accept.
	kp := issue(t, ca, api.NodeRole_MANAGER, ids.New())
	record := func(method string) {
		f.mu.Lock()
		f.seen = append(f.seen, method)
		f.mu.Unlock()
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(pki.ServerConfig(kp, nil, nil))),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			record(info.FullMethod)
			return h(ctx, req)
		}),
		grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
			m, _ := grpc.MethodFromServerStream(ss)
			record(m)
			return status.Error(codes.Unimplemented, "fake manager")
		}))
	api.RegisterCAServer(srv, f)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return f
}

func (f *fakeManager) GetRootCACertificate(context.Context, *api.GetRootCACertificateRequest) (*api.GetRootCACertificateResponse, error) {
	return &api.GetRootCACertificateResponse{Certificate: f.ca.CertPEM()}, nil
}

func (f *fakeManager) IssueNodeCertificate(_ context.Context, req *api.IssueNodeCertificateRequest) (*api.IssueNodeCertificateResponse, error) {
	f.mu.Lock()
	f.secret = f.secret || req.GetToken() != ""
	f.mu.Unlock()
	return nil, status.Error(codes.PermissionDenied, "fake manager")
}

func (f *fakeManager) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seen)
}

func (f *fakeManager) sawSecret() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.secret
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readCert(t *testing.T, path string) *x509.Certificate { return parseCert(t, readFile(t, path)) }

func parseCert(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	c, err := pki.ParseCertificatePEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
