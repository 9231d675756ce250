package pki

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	api "github.com/shoal-project/shoal/proto"
)

// An agent's session made with one manager resumes on another manager of
// the cluster (same secret: the root CA key), the server then sees the
// agent's certificate as on a full handshake; a manager keyed otherwise
// (another cluster, or one that has not read its store) makes a full
// handshake of it.
func TestSessionsResumeOnAnyManagerOfTheCluster(t *testing.T) {
	ca := newTestCA(t, clockwork.NewRealClock())
	agent := issue(t, ca, "node1", api.NodeRole_WORKER, testCluster, 0).keyPair(t)
	server := func(name string, secret string) *tls.Config {
		tk := NewTicketKeys()
		if secret != "" {
			if err := tk.SetSecret([]byte(secret)); err != nil {
				t.Fatal(err)
			}
		}
		return ServerConfig(issue(t, ca, name, api.NodeRole_MANAGER, testCluster, 0).keyPair(t), ca.Pool(), tk)
	}
	m1, m2, stranger := server("mgr1", "root CA key"), server("mgr2", "root CA key"), server("mgr3", "")
	cliCfg := ClientConfig(agent, ca.Pool(), ManagerServerName)

	if cli, _ := handshakePair(t, m1, cliCfg); cli.DidResume {
		t.Fatal("the first handshake resumed")
	}
	cli, srv := handshakePair(t, m2, cliCfg)
	if !cli.DidResume || !srv.DidResume {
		t.Fatalf("m2 did not resume m1's session (client %v, server %v)", cli.DidResume, srv.DidResume)
	}
	if len(srv.PeerCertificates) == 0 || len(srv.VerifiedChains) == 0 {
		t.Fatal("the resumed session carries no verified client certificate")
	}
	if id, err := IdentityFromCert(srv.PeerCertificates[0]); err != nil || id.NodeID != "node1" || id.Role != api.NodeRole_WORKER {
		t.Fatalf("resumed identity %v, %v; want node1, worker", id, err)
	}
	if len(cli.PeerCertificates) == 0 {
		t.Fatal("the resumed session carries no server certificate")
	}
	if cli, _ := handshakePair(t, stranger, cliCfg); cli.DidResume {
		t.Fatal("a manager with another ticket key resumed the session")
	}
	// The stranger's ticket, now cached, resumes on the stranger only.
	if cli, _ := handshakePair(t, stranger, cliCfg); !cli.DidResume {
		t.Fatal("a manager did not resume its own ticket (its key of this process)")
	}
	if cli, _ := handshakePair(t, m1, cliCfg); cli.DidResume {
		t.Fatal("m1 resumed a ticket sealed with another manager's own key")
	}
}

// After a renewal that changes the node's role (a promotion), the next
// handshake is full and presents the new certificate: a session made with
// the old one is never resumed, and none is kept for sessionSwapGrace
// after the Swap (a handshake that began with the old certificate may
// end then).
func TestSwapDropsTheOldCertificatesSessions(t *testing.T) {
	ca := newTestCA(t, clockwork.NewRealClock())
	tk := NewTicketKeys()
	srvCfg := ServerConfig(issue(t, ca, "mgr1", api.NodeRole_MANAGER, testCluster, 0).keyPair(t), ca.Pool(), tk)
	agent := issue(t, ca, "node1", api.NodeRole_WORKER, testCluster, 0).keyPair(t)
	now := epoch
	agent.now = func() time.Time { return now }
	cliCfg := ClientConfig(agent, ca.Pool(), ManagerServerName)
	handshakePair(t, srvCfg, cliCfg)
	if cli, _ := handshakePair(t, srvCfg, cliCfg); !cli.DidResume {
		t.Fatal("a reconnect did not resume")
	}
	promoted := issue(t, ca, "node1", api.NodeRole_MANAGER, testCluster, 0)
	if err := agent.Swap(promoted.certPEM, promoted.keyPEM); err != nil {
		t.Fatal(err)
	}
	cli, srv := handshakePair(t, srvCfg, cliCfg)
	if cli.DidResume {
		t.Fatal("the first handshake after a Swap resumed a session of the old certificate")
	}
	if id, err := IdentityFromCert(srv.PeerCertificates[0]); err != nil || id.Role != api.NodeRole_MANAGER {
		t.Fatalf("server saw %v, %v after the promotion; want the manager certificate", id, err)
	}
	now = now.Add(sessionSwapGrace - time.Second)
	if cli, _ := handshakePair(t, srvCfg, cliCfg); cli.DidResume {
		t.Fatal("a session was kept within the grace after the Swap")
	}
	now = now.Add(2 * time.Second)
	handshakePair(t, srvCfg, cliCfg) // its session is kept
	if cli, srv := handshakePair(t, srvCfg, cliCfg); !cli.DidResume || srv.PeerCertificates[0].SerialNumber.Cmp(promoted.cert.SerialNumber) != 0 {
		t.Fatalf("the new certificate's session: resumed %v, serial %v want %v", cli.DidResume, srv.PeerCertificates[0].SerialNumber, promoted.cert.SerialNumber)
	}
}

// A ticket a manager cannot open, whatever its bytes, means a full
// handshake, never an error; a secret set twice keeps the key (tickets
// stay valid), and a new secret voids the old key's tickets.
func TestTicketsThatCannotBeOpened(t *testing.T) {
	ca := newTestCA(t, clockwork.NewRealClock())
	tk := NewTicketKeys()
	if err := tk.SetSecret([]byte("one")); err != nil {
		t.Fatal(err)
	}
	srvCfg := ServerConfig(issue(t, ca, "mgr1", api.NodeRole_MANAGER, testCluster, 0).keyPair(t), ca.Pool(), tk)
	var sealed []byte
	wrap := srvCfg.WrapSession
	srvCfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		b, err := wrap(cs, ss)
		sealed = append([]byte(nil), b...)
		return b, err
	}
	cliCfg := ClientConfig(issue(t, ca, "node1", api.NodeRole_WORKER, testCluster, 0).keyPair(t), ca.Pool(), ManagerServerName)
	handshakePair(t, srvCfg, cliCfg)
	if len(sealed) == 0 {
		t.Fatal("no ticket was sealed")
	}
	if ss, err := tk.unwrap(sealed, tls.ConnectionState{}); ss == nil || err != nil {
		t.Fatalf("the ticket does not open: %v, %v", ss, err)
	}
	bad := map[string][]byte{
		"empty":     nil,
		"version":   append([]byte{ticketVersion + 1}, sealed[1:]...),
		"key ID":    flip(sealed, 3),
		"nonce":     flip(sealed, 1+ticketKeyIDLen+2),
		"sealed":    flip(sealed, len(sealed)-1),
		"truncated": sealed[:1+ticketKeyIDLen+12],
	}
	for name, ticket := range bad {
		if ss, err := tk.unwrap(ticket, tls.ConnectionState{}); ss != nil || err != nil {
			t.Errorf("%s: unwrap gave %v, %v; want nil, nil", name, ss, err)
		}
	}
	if err := tk.SetSecret([]byte("one")); err != nil {
		t.Fatal(err)
	}
	if ss, _ := tk.unwrap(sealed, tls.ConnectionState{}); ss == nil {
		t.Fatal("setting the same secret again voided the tickets")
	}
	if err := tk.SetSecret([]byte("two")); err != nil {
		t.Fatal(err)
	}
	if ss, _ := tk.unwrap(sealed, tls.ConnectionState{}); ss != nil {
		t.Fatal("a ticket of the previous secret still opens")
	}
	if cli, _ := handshakePair(t, srvCfg, cliCfg); cli.DidResume {
		t.Fatal("a ticket of the previous secret resumed")
	}
	if err := tk.SetSecret(nil); err != nil || tk.Shared() {
		t.Fatalf("an empty secret kept the shared key (%v)", err)
	}
}

func flip(b []byte, i int) []byte {
	out := append([]byte(nil), b...)
	out[i] ^= 0x80
	return out
}
