package pki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/shoal-project/shoal/errdefs"
)

// KeyPair is a node's live TLS certificate and key. Renewal replaces them
// with Swap while connections use them; the TLS configs built here read the
// current pair at every handshake. A KeyPair is safe for concurrent use.
type KeyPair struct {
	cur atomic.Pointer[keyPairState]
	// now is the clock of sessionSwapGrace (time.Now; tests replace it).
	now func() time.Time
}

type keyPairState struct {
	cert tls.Certificate // Leaf is set
	id   Identity
	// sessions holds the TLS sessions that connections made with this
	// certificate can resume, by server name. Each certificate has its
	// own: a session resumed carries the certificate it was made with, so
	// after a Swap (a renewal, a promotion) the next handshakes are full
	// and present the new one.
	sessions tls.ClientSessionCache
	// since is when this certificate became current (zero for the first).
	since time.Time
}

// sessionSwapGrace is how long after a Swap no session is kept: a
// handshake that began with the old certificate and ends after the Swap
// would store a session of the old certificate among the new one's, and
// every resumption of it (each hands out a new ticket for the same
// session) would present the old certificate for days, the old role after
// a promotion. A handshake ends within its connect deadline (seconds);
// sessions of the new certificate lost meanwhile cost one full handshake.
const sessionSwapGrace = time.Minute

// sessionsPerKeyPair bounds a KeyPair's cached TLS sessions: one per
// server name, and a node names ManagerServerName and, between managers,
// each other manager's node ID.
const sessionsPerKeyPair = 16

// NewKeyPair builds a KeyPair from a PEM certificate and its PEM key. The
// certificate must carry a shoal identity and match the key. It does not
// check who signed it: do that with RootCA.VerifyNodeCert.
func NewKeyPair(certPEM, keyPEM []byte) (*KeyPair, error) {
	st, err := newKeyPairState(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	kp := &KeyPair{now: time.Now}
	kp.cur.Store(st)
	return kp, nil
}

func newKeyPairState(certPEM, keyPEM []byte) (*keyPairState, error) {
	leaf, err := ParseCertificatePEM(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	if !samePublicKey(leaf.PublicKey, key.Public()) {
		return nil, errdefs.InvalidArgument("the private key does not match the certificate")
	}
	id, err := IdentityFromCert(leaf)
	if err != nil {
		return nil, errdefs.InvalidArgument("%v", err)
	}
	return &keyPairState{
		cert:     tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf},
		id:       id,
		sessions: tls.NewLRUClientSessionCache(sessionsPerKeyPair),
	}, nil
}

// Swap atomically replaces the pair with a renewed certificate and key.
// The new certificate must be for the same node and cluster (its role may
// differ: promotion and demotion renew the certificate). Handshakes already
// in progress finish with the old pair.
func (kp *KeyPair) Swap(certPEM, keyPEM []byte) error {
	st, err := newKeyPairState(certPEM, keyPEM)
	if err != nil {
		return err
	}
	old := kp.cur.Load()
	if st.id.NodeID != old.id.NodeID || st.id.ClusterID != old.id.ClusterID {
		return errdefs.InvalidArgument("renewed certificate is for %s, not %s", st.id, old.id)
	}
	st.since = kp.now()
	kp.cur.Store(st)
	return nil
}

// Certificate returns the current certificate, with Leaf set. Callers must
// not modify it.
func (kp *KeyPair) Certificate() *tls.Certificate { return &kp.cur.Load().cert }

// Leaf returns the current parsed certificate. Callers must not modify it.
func (kp *KeyPair) Leaf() *x509.Certificate { return kp.cur.Load().cert.Leaf }

// Identity returns the identity of the current certificate.
func (kp *KeyPair) Identity() Identity { return kp.cur.Load().id }

// keyPairSessions is the tls.ClientSessionCache of the configs that
// ClientConfig builds for a KeyPair: the current certificate's sessions,
// none kept within sessionSwapGrace of a Swap.
type keyPairSessions struct{ kp *KeyPair }

func (s keyPairSessions) Get(key string) (*tls.ClientSessionState, bool) {
	return s.kp.cur.Load().sessions.Get(key)
}

func (s keyPairSessions) Put(key string, cs *tls.ClientSessionState) {
	st := s.kp.cur.Load()
	if cs != nil && !st.since.IsZero() && s.kp.now().Sub(st.since) < sessionSwapGrace {
		return
	}
	st.sessions.Put(key, cs)
}

// ServerConfig returns the TLS config of a node's gRPC server. It presents
// the KeyPair's current certificate. With roots, it asks for a client
// certificate and verifies one when given (tls.VerifyClientCertIfGiven):
// calls without one reach the server so the CA bootstrap calls work, and the
// Authorizer refuses them everywhere else. Without roots no client
// certificate is asked for. tickets, when not nil, seals and opens the
// session tickets (a manager's: shared by the cluster's managers); nil
// leaves them to crypto/tls (this config's own keys).
func ServerConfig(kp *KeyPair, roots *x509.CertPool, tickets *TicketKeys) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return kp.Certificate(), nil
		},
	}
	if tickets != nil {
		cfg.WrapSession = tickets.wrap
		cfg.UnwrapSession = tickets.unwrap
	}
	if roots != nil {
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		cfg.ClientCAs = roots
	}
	return cfg
}

// ClientConfig returns the TLS config of node-to-node calls. roots is pinned
// (only certificates of the cluster's root CA are accepted), serverName is
// what the server's certificate must name: a node ID to reach that exact
// node, or ManagerServerName for any manager. kp, when not nil, is presented
// as the client certificate (read at each handshake, so renewal needs no new
// config), and then the server must also be of kp's cluster (O); the
// config then resumes TLS sessions kept by kp (of its current certificate,
// shared by every config built for kp), so that a reconnect skips the
// certificates' signatures and verification when the server can open its
// ticket (TicketKeys). A joiner that has pinned the CA but has no
// certificate yet passes kp nil.
//
// The root pool is fixed in the returned config; after a root CA change,
// build new configs.
func ClientConfig(kp *KeyPair, roots *x509.CertPool, serverName string) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    roots,
		ServerName: serverName,
	}
	if kp == nil {
		cfg.NextProtos = []string{JoinProto} // a joiner, before it has a certificate
		return cfg
	}
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return kp.Certificate(), nil
	}
	cfg.ClientSessionCache = keyPairSessions{kp}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		// Runs after the chain and name were verified against roots.
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("server presented no certificate")
		}
		peerID, err := IdentityFromCert(cs.PeerCertificates[0])
		if err != nil {
			return fmt.Errorf("server certificate: %w", err)
		}
		if want := kp.Identity().ClusterID; peerID.ClusterID != want {
			return fmt.Errorf("server is %s, not of this node's cluster %s", peerID, want)
		}
		return nil
	}
	return cfg
}

// PeerProto is the ALPN protocol name a manager offers, besides gRPC's
// "h2", on its connections to other managers (PeerClientConfig). It is a
// hint read from the ClientHello, before any cryptography, so that a
// manager refusing new connections while overloaded (Admit) still lets
// the other managers' raft and forwarded calls in. It is not a
// credential: a client that claims it only skips the shedding; what it may
// call is still decided by its certificate.
const PeerProto = "shoal-manager-peer"

// PeerClientConfig is ClientConfig for a manager's connections to other
// managers: it also offers PeerProto. The server still settles on "h2".
func PeerClientConfig(kp *KeyPair, roots *x509.CertPool, serverName string) *tls.Config {
	cfg := ClientConfig(kp, roots, serverName)
	cfg.NextProtos = []string{PeerProto}
	return cfg
}

// OffersPeerProto reports whether a ClientHello is from PeerClientConfig.
func OffersPeerProto(hello *tls.ClientHelloInfo) bool {
	return slices.Contains(hello.SupportedProtos, PeerProto)
}

// JoinProto is the ALPN protocol name a joining node offers, besides
// "h2", on the connections it makes before it has a certificate
// (BootstrapClientConfig, and ClientConfig without a key pair): a manager
// that refuses agents' new connections while it reads its raft snapshot
// and log after a restart still lets a join through, so that `join` does
// not fail on a manager restarted a minute ago. A hint like PeerProto, not
// a credential: the join token decides.
const JoinProto = "shoal-join"

// OffersJoinProto reports whether a ClientHello is from a joining node.
func OffersJoinProto(hello *tls.ClientHelloInfo) bool {
	return slices.Contains(hello.SupportedProtos, JoinProto)
}

// Admit makes cfg, a server config, ask admit about each new connection
// once its ClientHello is read and before any key exchange or signature:
// an error aborts the handshake (the client sees a TLS internal_error
// alert), at the cost of reading one record. Use it to refuse new
// connections while overloaded.
func Admit(cfg *tls.Config, admit func(*tls.ClientHelloInfo) error) {
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if err := admit(hello); err != nil {
			return nil, err
		}
		return nil, nil
	}
}

// BootstrapClientConfig returns the TLS config a joiner uses for exactly one
// call: downloading the root CA certificate (CA.GetRootCACertificate). It
// does not verify the server (InsecureSkipVerify) because the joiner has no
// CA yet; the downloaded certificate is then checked against the join
// token's digest with CheckRootCAForToken, and nothing secret is ever sent
// on this connection. Every later call uses ClientConfig with the pinned
// root.
func BootstrapClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Safe only for the download of the root CA certificate, which is
		// verified against the join token's digest before any use.
		InsecureSkipVerify: true, //nolint:gosec // see above
		NextProtos:         []string{JoinProto},
	}
}
