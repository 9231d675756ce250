package pki

import (
	"crypto/tls"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/jonboulle/clockwork"

	api "github.com/shoal-project/shoal/proto"
)

// BenchmarkMTLSHandshake is one agent-to-manager handshake with the
// swarm's certificates (P-256, TLS 1.3, the agent's certificate verified),
// both sides in this process over a socket pair: what each of 10,000 agents
// reconnecting at once costs the two machines together (here: one).
// "full" is a first connection; "resumed" a reconnect that resumes the
// agent's last session with a ticket (the agent's KeyPair keeps it, the
// manager's TicketKeys opens it), which skips both certificate
// signatures and chain verifications but still agrees a fresh ECDHE key.
// Each round trip includes the server's one-byte write and the client's
// read of it, which takes the session ticket in.
func BenchmarkMTLSHandshake(b *testing.B) {
	ca := newTestCA(b, clockwork.NewRealClock())
	server := issue(b, ca, "mgr1", api.NodeRole_MANAGER, testCluster, 0).keyPair(b)
	srvCfg := ServerConfig(server, ca.Pool(), NewTicketKeys())
	for _, resume := range []bool{false, true} {
		name := "full"
		if resume {
			name = "resumed"
		}
		b.Run(name, func(b *testing.B) {
			agent := issue(b, ca, "node1", api.NodeRole_WORKER, testCluster, 0).keyPair(b)
			if resume {
				if r := handshakeOnce(b, srvCfg, ClientConfig(agent, ca.Pool(), ManagerServerName)); r {
					b.Fatal("the first handshake resumed a session")
				}
			}
			b.ResetTimer()
			for range b.N {
				cliCfg := ClientConfig(agent, ca.Pool(), ManagerServerName)
				if !resume {
					cliCfg.ClientSessionCache = nil
				}
				if r := handshakeOnce(b, srvCfg, cliCfg); r != resume {
					b.Fatalf("resumed %v, want %v", r, resume)
				}
			}
		})
	}
}

// handshakeOnce runs one handshake between the two configs,
// then one byte from the server to the client, and says whether the
// session was resumed.
func handshakeOnce(tb testing.TB, srvCfg, cliCfg *tls.Config) bool {
	cli, _ := handshakePair(tb, srvCfg, cliCfg)
	return cli.DidResume
}

// handshakePair runs one TLS 1.3 handshake between the two configs over a
// socket pair (buffered as TCP is: on a resumption the server sends its
// ticket before it reads the client's Finished, which an unbuffered
// net.Pipe deadlocks), then one byte from the server to the client (whose read takes in
// the server's session ticket), and returns both sides' states.
func handshakePair(tb testing.TB, srvCfg, cliCfg *tls.Config) (cli, srv tls.ConnectionState) {
	tb.Helper()
	c, s := socketPair(tb)
	defer c.Close()
	defer s.Close()
	type result struct {
		st  tls.ConnectionState
		err error
	}
	done := make(chan result, 1)
	go func() {
		conn := tls.Server(s, srvCfg)
		if err := conn.Handshake(); err != nil {
			s.Close() // the client's read then ends
			done <- result{err: err}
			return
		}
		_, err := conn.Write([]byte{1})
		done <- result{st: conn.ConnectionState(), err: err}
	}()
	conn := tls.Client(c, cliCfg)
	err := conn.Handshake()
	if err == nil {
		var one [1]byte
		_, err = conn.Read(one[:])
	}
	c.Close() // a server still writing then ends
	r := <-done
	if r.err != nil {
		tb.Fatalf("server: %v", r.err)
	}
	if err != nil {
		tb.Fatalf("client: %v", err)
	}
	cli = conn.ConnectionState()
	if cli.Version != tls.VersionTLS13 {
		tb.Fatal("not TLS 1.3")
	}
	return cli, r.st
}

// socketPair returns the two ends of a connected Unix stream socket pair.
func socketPair(tb testing.TB) (net.Conn, net.Conn) {
	tb.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f) // dups the descriptor
		f.Close()
		if err != nil {
			tb.Fatal(err)
		}
		conns[i] = c
	}
	return conns[0], conns[1]
}
