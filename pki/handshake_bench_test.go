package pki

import (
	"crypto/tls"
	"net"
	"testing"

	"github.com/jonboulle/clockwork"

	api "github.com/shoal-project/shoal/proto"
)

// BenchmarkMTLSHandshake is one full agent-to-manager handshake with the
// swarm's certificates (P-256, TLS 1.3, the agent's certificate verified),
// both sides in this process over a pipe: what each of 10,000 agents
// reconnecting at once costs the two machines together (here: one).
func BenchmarkMTLSHandshake(b *testing.B) {
	ca := newTestCA(b, clockwork.NewRealClock())
	server := issue(b, ca, "mgr1", api.NodeRole_MANAGER, testCluster, 0).keyPair(b)
	agent := issue(b, ca, "node1", api.NodeRole_WORKER, testCluster, 0).keyPair(b)
	srvCfg := ServerConfig(server, ca.Pool())
	cliCfg := ClientConfig(agent, ca.Pool(), ManagerServerName)
	b.ResetTimer()
	for range b.N {
		c, s := net.Pipe()
		errs := make(chan error, 1)
		go func() { errs <- tls.Server(s, srvCfg).Handshake() }()
		cli := tls.Client(c, cliCfg)
		err := cli.Handshake()
		c.Close()
		s.Close()
		if err != nil {
			b.Fatal(err)
		}
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
		if cli.ConnectionState().Version != tls.VersionTLS13 {
			b.Fatal("not TLS 1.3")
		}
	}
}
