package pki

import (
	"crypto/tls"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jonboulle/clockwork"

	api "github.com/shoal-project/shoal/proto"
)

// A server config under Admit refuses the connections its admit function
// refuses before presenting its certificate (no signature made), and
// PeerClientConfig's connections are told apart by their ClientHello.
func TestAdmitRefusesBeforeTheKeyExchange(t *testing.T) {
	ca := newTestCA(t, clockwork.NewRealClock())
	srvCfg := ServerConfig(issue(t, ca, "mgr1", api.NodeRole_MANAGER, testCluster, 0).keyPair(t), ca.Pool(), nil)
	var certs atomic.Int32
	getCert := srvCfg.GetCertificate
	srvCfg.GetCertificate = func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		certs.Add(1)
		return getCert(h)
	}
	var asked atomic.Int32
	Admit(srvCfg, func(h *tls.ClientHelloInfo) error {
		asked.Add(1)
		if h.ServerName != ManagerServerName {
			t.Errorf("admit saw server name %q", h.ServerName)
		}
		if OffersPeerProto(h) {
			return nil
		}
		return errors.New("overloaded")
	})
	agent := issue(t, ca, "node1", api.NodeRole_WORKER, testCluster, 0).keyPair(t)
	err := tryHandshake(t, srvCfg, ClientConfig(agent, ca.Pool(), ManagerServerName))
	if err == nil || !strings.Contains(err.Error(), "internal error") {
		t.Fatalf("refused client's handshake: %v, want a TLS internal error alert", err)
	}
	if certs.Load() != 0 {
		t.Fatal("the server presented its certificate to a refused client")
	}
	peer := issue(t, ca, "mgr2", api.NodeRole_MANAGER, testCluster, 0).keyPair(t)
	if err := tryHandshake(t, srvCfg, PeerClientConfig(peer, ca.Pool(), ManagerServerName)); err != nil {
		t.Fatalf("a peer manager's handshake: %v", err)
	}
	if asked.Load() != 2 || certs.Load() != 1 {
		t.Fatalf("admit asked %d times, certificate presented %d times; want 2 and 1", asked.Load(), certs.Load())
	}
}

// tryHandshake runs a handshake over a socket pair and returns the
// client's error.
func tryHandshake(tb testing.TB, srvCfg, cliCfg *tls.Config) error {
	tb.Helper()
	c, s := socketPair(tb)
	defer c.Close()
	defer s.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn := tls.Server(s, srvCfg)
		if conn.Handshake() == nil {
			_, _ = conn.Write([]byte{1})
		}
		s.Close()
	}()
	conn := tls.Client(c, cliCfg)
	err := conn.Handshake()
	if err == nil {
		var one [1]byte
		_, err = conn.Read(one[:])
	}
	c.Close()
	<-done
	return err
}

// A joining node's connections, made before it has a certificate, offer
// JoinProto in their ClientHello; an agent's do not.
func TestJoinersOfferTheJoinHint(t *testing.T) {
	ca := newTestCA(t, clockwork.NewRealClock())
	srvCfg := ServerConfig(issue(t, ca, "mgr1", api.NodeRole_MANAGER, testCluster, 0).keyPair(t), ca.Pool(), nil)
	var joining atomic.Bool
	Admit(srvCfg, func(h *tls.ClientHelloInfo) error {
		joining.Store(OffersJoinProto(h))
		return errors.New("refused: only the ClientHello matters here")
	})
	agent := issue(t, ca, "node1", api.NodeRole_WORKER, testCluster, 0).keyPair(t)
	for _, c := range []struct {
		name string
		cfg  *tls.Config
		want bool
	}{
		{"the root CA download", BootstrapClientConfig(), true},
		{"the certificate request", ClientConfig(nil, ca.Pool(), ManagerServerName), true},
		{"an agent", ClientConfig(agent, ca.Pool(), ManagerServerName), false},
		{"a manager", PeerClientConfig(agent, ca.Pool(), ManagerServerName), false},
	} {
		joining.Store(!c.want)
		_ = tryHandshake(t, srvCfg, c.cfg)
		if joining.Load() != c.want {
			t.Errorf("%s: offers the join hint %v, want %v", c.name, !c.want, c.want)
		}
	}
}
