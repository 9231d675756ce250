package dockerapi

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// FileTLS is the TLS configuration of --docker-tls-cert, --docker-tls-key
// and --docker-tls-ca, like dockerd's --tlsverify: the server's
// certificate, and clients must present a certificate ca signed.
func FileTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" || caFile == "" {
		return nil, errors.New("--docker-tls-cert, --docker-tls-key and --docker-tls-ca go together: give all three (the TCP Engine API always verifies client certificates), or none to use the node's swarm certificate")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--docker-tls-cert %s / --docker-tls-key %s: %w", certFile, keyFile, err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--docker-tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--docker-tls-ca %s: no PEM certificate in the file", caFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// NodeTLS serves with the node's own swarm certificate and accepts clients
// whose certificate the swarm's root CA signed (a node certificate, or one
// the swarm's CA issued for a person). current returns the node's identity
// at each handshake (it renews); while the node is not in a swarm every
// handshake fails.
func NodeTLS(current func() (*tls.Certificate, *x509.CertPool, bool)) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, roots, ok := current()
			if !ok {
				return nil, errors.New("this node is not in a swarm (or is locked): it has no certificate to serve the Engine API over TCP with; use the unix socket, or give --docker-tls-cert/--docker-tls-key/--docker-tls-ca")
			}
			return &tls.Config{
				Certificates: []tls.Certificate{*cert},
				ClientCAs:    roots,
				ClientAuth:   tls.RequireAndVerifyClientCert,
				MinVersion:   tls.VersionTLS12,
			}, nil
		},
	}
}
