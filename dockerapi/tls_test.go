package dockerapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testCA is a CA that issues server and client certificates for tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue makes a certificate for 127.0.0.1, usable by servers and clients.
func (ca *testCA) issue(t *testing.T, cn string) (tls.Certificate, []byte, []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair, certPEM, keyPEM
}

// serveTCP runs a Server on a loopback port with tlsCfg until the test ends.
func serveTCP(t *testing.T, tlsCfg *tls.Config) string {
	t.Helper()
	return serveUntilEnd(t, Config{TCPAddr: "127.0.0.1:0", TLS: tlsCfg, Version: "t"}).TCPAddr().String()
}

// serveUntilEnd runs a Server with cfg (and the fakes of newEnv) until the
// test ends, and returns once it listens.
func serveUntilEnd(t *testing.T, cfg Config) *Server {
	t.Helper()
	e := newEnv(t)
	s, err := newServer(cfg, e.control, e.local)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	select {
	case <-s.Listening():
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	}
	return s
}

// ping calls GET /_ping over TLS with the client certificate (none when
// nil), trusting roots.
func ping(addr string, roots *x509.CertPool, cert *tls.Certificate) (string, error) {
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	resp, err := c.Get("https://" + addr + "/_ping")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TCP with the node's identity: only clients with a certificate of the
// swarm's CA get in; before the node is in a swarm nobody does.
func TestTCPRequiresSwarmClientCert(t *testing.T) {
	swarmCA, otherCA := newTestCA(t, "swarm-ca"), newTestCA(t, "other-ca")
	nodeCert, _, _ := swarmCA.issue(t, "node1")
	var inSwarm atomic.Bool
	addr := serveTCP(t, NodeTLS(func() (*tls.Certificate, *x509.CertPool, bool) {
		if !inSwarm.Load() {
			return nil, nil, false
		}
		return &nodeCert, swarmCA.pool, true
	}))
	client, _, _ := swarmCA.issue(t, "client")
	if _, err := ping(addr, swarmCA.pool, &client); err == nil {
		t.Fatal("a handshake succeeded before the node had a certificate")
	}
	inSwarm.Store(true)
	if body, err := ping(addr, swarmCA.pool, &client); err != nil || body != "OK" {
		t.Fatalf("client of the swarm CA: %q, %v", body, err)
	}
	if _, err := ping(addr, swarmCA.pool, nil); err == nil {
		t.Fatal("a client without a certificate got in")
	}
	stranger, _, _ := otherCA.issue(t, "stranger")
	if _, err := ping(addr, swarmCA.pool, &stranger); err == nil {
		t.Fatal("a client with another CA's certificate got in")
	}
}

// TCP with --docker-tls-*: the configured CA decides.
func TestTCPWithFileTLS(t *testing.T) {
	ca, otherCA := newTestCA(t, "ops-ca"), newTestCA(t, "other-ca")
	dir := t.TempDir()
	_, certPEM, keyPEM := ca.issue(t, "server")
	for name, b := range map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM, "ca.pem": ca.pem} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := FileTLS(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTCP(t, cfg)
	client, _, _ := ca.issue(t, "client")
	if body, err := ping(addr, ca.pool, &client); err != nil || body != "OK" {
		t.Fatalf("client of the CA: %q, %v", body, err)
	}
	stranger, _, _ := otherCA.issue(t, "stranger")
	if _, err := ping(addr, ca.pool, &stranger); err == nil {
		t.Fatal("a client with another CA's certificate got in")
	}
	if _, err := ping(addr, ca.pool, nil); err == nil {
		t.Fatal("a client without a certificate got in")
	}
	if _, err := FileTLS(filepath.Join(dir, "cert.pem"), "", ""); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Fatalf("partial flags: %v", err)
	}
	if _, err := newServer(Config{TCPAddr: "127.0.0.1:0"}, nil, nil); err == nil {
		t.Fatal("TCP without TLS accepted")
	}
	if _, err := newServer(Config{TCPAddr: "127.0.0.1:0", TLS: &tls.Config{}}, nil, nil); err == nil {
		t.Fatal("TCP without client verification accepted")
	}
}

// The unix socket is 0660 and goes away with the server.
func TestUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "dockerapi")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "docker.sock")
	e := newEnv(t)
	s, err := newServer(Config{Socket: sock, Version: "t"}, e.control, e.local)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	<-s.Listening()
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket: %v %v", fi.Mode(), err)
	}
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}, Timeout: 10 * time.Second}
	resp, err := c.Get("http://docker/v1.41/version")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"ApiVersion":"1.50"`) || !strings.Contains(string(b), `"MinAPIVersion":"1.41"`) {
		t.Fatalf("version: %d %s", resp.StatusCode, b)
	}
	// A second server on the same socket is refused, naming it.
	s2, _ := newServer(Config{Socket: sock, Version: "t"}, e.control, e.local)
	if err := s2.Serve(context.Background()); err == nil || !strings.Contains(err.Error(), "is in use") {
		t.Fatalf("second server on %s: %v", sock, err)
	}
	c.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}
