package worker

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
)

// A manager that refuses a new connection while overloaded (pki.Admit)
// reaches the agent as gRPC's bare "tls: internal error"; the agent's
// session error says what it means.
func TestOverloadRefusalIsExplained(t *testing.T) {
	ca, err := pki.NewRootCA(clockwork.NewRealClock())
	if err != nil {
		t.Fatal(err)
	}
	keyPair := func(id string, role api.NodeRole) *pki.KeyPair {
		return testutil.KeyPair(t, ca, id, role, "c1")
	}
	srvCfg := pki.ServerConfig(keyPair("mgr1", api.NodeRole_MANAGER), ca.Pool(), nil)
	pki.Admit(srvCfg, func(*tls.ClientHelloInfo) error { return errors.New("overloaded") })
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(srvCfg)))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(
		pki.ClientConfig(keyPair("node1", api.NodeRole_WORKER), ca.Pool(), pki.ManagerServerName))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := api.NewDispatcherClient(conn).Session(ctx, &api.SessionRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if err == nil {
		t.Fatal("a refused connection opened a session")
	}
	if hint := refusalHint(err); !strings.Contains(hint, "overloaded") {
		t.Fatalf("no hint for %v", err)
	}
	if refusalHint(errors.New("connection refused")) != "" {
		t.Fatal("a hint for another error")
	}
}
