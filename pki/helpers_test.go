package pki

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	api "github.com/shoal-project/shoal/proto"
)

// epoch is the fake clocks' start: fixed so that tests do not depend on the
// real time (except where real TLS handshakes need certificates valid now).
var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

const testCluster = "cluster1"

func newTestCA(t testing.TB, clock clockwork.Clock) *RootCA {
	t.Helper()
	ca, err := NewRootCA(clock)
	if err != nil {
		t.Fatalf("NewRootCA: %v", err)
	}
	return ca
}

// nodeCert is an issued node certificate with its key.
type nodeCert struct {
	certPEM, keyPEM []byte
	cert            *x509.Certificate
}

func (n nodeCert) keyPair(t testing.TB) *KeyPair {
	t.Helper()
	kp, err := NewKeyPair(n.certPEM, n.keyPEM)
	if err != nil {
		t.Fatalf("NewKeyPair: %v", err)
	}
	return kp
}

func issue(t testing.TB, ca *RootCA, nodeID string, role api.NodeRole, cluster string, expiry time.Duration) nodeCert {
	t.Helper()
	csrPEM, keyPEM, err := GenerateCSR()
	if err != nil {
		t.Fatalf("GenerateCSR: %v", err)
	}
	certPEM, err := ca.Sign(csrPEM, nodeID, role, cluster, expiry)
	if err != nil {
		t.Fatalf("Sign(%s): %v", nodeID, err)
	}
	cert, err := ParseCertificatePEM(certPEM)
	if err != nil {
		t.Fatalf("ParseCertificatePEM: %v", err)
	}
	return nodeCert{certPEM: certPEM, keyPEM: keyPEM, cert: cert}
}
