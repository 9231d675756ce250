package testcluster

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// JoinWorker joins a worker node the way `swarm join --token` does, over
// the network: it downloads the root CA without a certificate, checks it
// against the worker join token's digest, sends the token with a CSR to
// the CA service (which names the node and records it), and starts the
// agent with the certificate it got. AddAgent is the cheap path that signs
// locally; this one exercises the CA service.
func (c *Cluster) JoinWorker() *Agent {
	c.tb.Helper()
	var token string
	c.View(func(tx raftstore.ReadTx) {
		if cs := tx.Clusters(); len(cs) > 0 {
			token = cs[0].GetRootCa().GetJoinTokens().GetWorker()
		}
	})
	tok, err := pki.ParseJoinToken(token)
	if err != nil {
		c.tb.Fatalf("worker join token: %v", err)
	}
	name := c.nextWorkerName()
	var resp *api.IssueNodeCertificateResponse
	var keyPEM []byte
	c.WaitFor(name+" to join through the CA service", time.Minute, func() error {
		via := c.currentLeader()
		if via == nil {
			return errdefs.ErrNoLeader
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var r *api.IssueNodeCertificateResponse
		var err error
		r, keyPEM, err = c.join(ctx, name, via.Addr, tok)
		if err != nil {
			return err
		}
		resp = r
		return nil
	})
	kp, err := pki.NewKeyPair(resp.Certificate, keyPEM)
	if err != nil {
		c.tb.Fatal(err)
	}
	a := &Agent{c: c, Name: name, NodeID: resp.NodeId, kp: kp}
	c.launch(a)
	return a
}

// join runs the two CA calls of a join from node name through the
// manager at addr.
func (c *Cluster) join(ctx context.Context, name, addr string, tok pki.JoinToken) (*api.IssueNodeCertificateResponse, []byte, error) {
	dial := func(creds credentials.TransportCredentials) (*grpc.ClientConn, error) {
		return grpc.NewClient("passthrough:///"+addr,
			grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return c.net.dial(ctx, name, a) }),
			grpc.WithTransportCredentials(creds))
	}
	boot, err := dial(credentials.NewTLS(pki.BootstrapClientConfig()))
	if err != nil {
		return nil, nil, err
	}
	defer boot.Close()
	root, err := api.NewCAClient(boot).GetRootCACertificate(ctx, &api.GetRootCACertificateRequest{})
	if err != nil {
		return nil, nil, errdefs.FromGRPC(err)
	}
	ca, err := pki.CheckRootCAForToken(root.Certificate, tok)
	if err != nil {
		return nil, nil, fmt.Errorf("the root CA does not match the token: %w", err)
	}
	// From here on the manager is verified against the pinned root.
	conn, err := dial(credentials.NewTLS(pki.ClientConfig(nil, ca.Pool(), pki.ManagerServerName)))
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	csr, key, err := pki.GenerateCSR()
	if err != nil {
		return nil, nil, err
	}
	resp, err := api.NewCAClient(conn).IssueNodeCertificate(ctx, &api.IssueNodeCertificateRequest{
		Csr: csr, Token: tok.String(), Description: &api.NodeDescription{Hostname: name}})
	if err != nil {
		return nil, nil, errdefs.FromGRPC(err)
	}
	return resp, key, nil
}
