package dashboard_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/shoal-project/shoal/dashboard"
	"github.com/shoal-project/shoal/internal/testcluster"
)

// issue makes a certificate for cn signed by parent (self-signed when
// parent is nil).
func issue(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, ca bool) (*x509.Certificate, *ecdsa.PrivateKey, tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:        ca, BasicConstraintsValid: true, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}
}

// With NodeTLS (--dashboard-tls) a remote address is allowed, and only
// clients with a certificate the swarm's CA signed get an answer.
func TestMutualTLS(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Managers: 1})
	caCert, caKey, _ := issue(t, "swarm-ca", nil, nil, true)
	_, _, serverCert := issue(t, "node", caCert, caKey, false)
	_, _, clientCert := issue(t, "operator", caCert, caKey, false)
	_, _, strangerCert := issue(t, "stranger", nil, nil, false)
	roots := x509.NewCertPool()
	roots.AddCert(caCert)

	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := dashboard.New(dashboard.Config{Conn: c.ConnVia(c.Leader()), Listener: ln,
		TLS: dashboard.NodeTLS(func() (*tls.Certificate, *x509.CertPool, bool) { return &serverCert, roots, true })})
	if err != nil {
		t.Fatalf("a remote address with mutual TLS: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("Serve did not return in 20 s")
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	url := "https://127.0.0.1:" + port + "/api/state"
	get := func(cert *tls.Certificate) (int, error) {
		cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		cl := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		resp, err := cl.Get(url)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get(&clientCert); err != nil || code != 200 {
		t.Fatalf("with the swarm's client certificate: %d %v", code, err)
	}
	if code, err := get(nil); err == nil {
		t.Fatalf("without a client certificate: %d", code)
	}
	if code, err := get(&strangerCert); err == nil {
		t.Fatalf("with a certificate of another CA: %d", code)
	}
}
