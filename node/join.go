package node

import (
	"context"
	"net"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
)

// Join makes this node a member of an existing swarm (`shoal swarm join`).
// The root CA is downloaded and checked against the token's digest before
// the token's secret leaves this node; the token decides the role. A
// failed Join leaves the node as it was.
func (n *Node) Join(ctx context.Context, req *api.JoinRequest) (resp *api.JoinResponse, err error) {
	err = n.enterSwarm(func() (mb *member, state *nodeState, err error) {
		resp, mb, state, err = n.join(ctx, req)
		return mb, state, err
	})
	return resp, err
}

func (n *Node) join(ctx context.Context, req *api.JoinRequest) (resp *api.JoinResponse, mb *member, state *nodeState, err error) {
	remote := req.GetRemoteAddr()
	if _, _, err := net.SplitHostPort(remote); err != nil {
		return nil, nil, nil, errdefs.InvalidArgument("invalid manager address %q: expected host:port", remote)
	}
	tok, err := pki.ParseJoinToken(req.GetJoinToken())
	if err != nil {
		return nil, nil, nil, err
	}
	listen := firstNonEmpty(req.GetListenAddr(), n.cfg.ListenAddr)
	advertise, err := chooseAdvertise(firstNonEmpty(req.GetAdvertiseAddr(), n.cfg.AdvertiseAddr), listen)
	if err != nil {
		return nil, nil, nil, err
	}
	if dp := req.GetDataPathAddr(); dp != "" {
		if _, err := resolveDataPath(dp); err != nil {
			return nil, nil, nil, err
		}
	}
	// 1. The root CA, over TLS that cannot verify anything yet; pinned
	// against the token's digest before anything secret is sent.
	rootCA, err := n.fetchRootCA(ctx, remote, tok)
	if err != nil {
		return nil, nil, nil, err
	}
	// 2. Now verified TLS to the manager; the secret goes out.
	csr, key, err := pki.GenerateCSR()
	if err != nil {
		return nil, nil, nil, err
	}
	issued, err := n.issue(ctx, remote, rootCA, &api.IssueNodeCertificateRequest{
		Csr: csr, Token: req.GetJoinToken(), Availability: req.GetAvailability(),
		Description: n.describe(), AdvertiseAddr: advertise,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	state = &nodeState{ListenAddr: listen, AdvertiseAddr: advertise, DataPathAddr: req.GetDataPathAddr(), Managers: []string{remote}}
	_, st, err := n.persistIdentity(pki.NodeState{KeyPEM: key, CertPEM: issued.Certificate, RootCAPEM: rootCA.CertPEM()}, state)
	if err != nil {
		return nil, nil, state, err
	}
	// A manager first becomes a raft member through the manager it joined.
	mode := startRestart
	if st.Identity.Role == api.NodeRole_MANAGER {
		mode = startJoin
	}
	if mb, err = n.start(n.runCtx(), st, state, mode, remote); err != nil {
		return nil, nil, state, err
	}
	mb.waitExec(ctx)
	n.log.Info("joined the swarm", "node", issued.NodeId, "role", roleName(issued.Role), "via", remote)
	return &api.JoinResponse{NodeId: issued.NodeId, Role: issued.Role}, mb, state, nil
}

// fetchRootCA downloads the swarm's root CA and checks it against the
// token. A mismatch aborts the join before the token's secret is sent.
func (n *Node) fetchRootCA(ctx context.Context, remote string, tok pki.JoinToken) (*pki.RootCA, error) {
	conn, err := grpc.NewClient(remote, n.dialOptions(grpc.WithTransportCredentials(credentials.NewTLS(pki.BootstrapClientConfig())))...)
	if err != nil {
		return nil, errdefs.Unavailable("connect to %s: %v", remote, err)
	}
	defer conn.Close()
	cctx, cancel := clockwork.WithTimeout(ctx, n.cfg.Clock, joinTimeout)
	defer cancel()
	resp, err := api.NewCAClient(conn).GetRootCACertificate(cctx, &api.GetRootCACertificateRequest{})
	if err != nil {
		return nil, errdefs.Unavailable("could not reach a manager at %s to join the swarm: %v", remote, errdefs.FromGRPC(err))
	}
	return pki.CheckRootCAForToken(resp.GetCertificate(), tok)
}

// issue asks the manager at remote, verified against rootCA, for this
// node's certificate.
func (n *Node) issue(ctx context.Context, remote string, rootCA *pki.RootCA, req *api.IssueNodeCertificateRequest) (*api.IssueNodeCertificateResponse, error) {
	conn, err := grpc.NewClient(remote, n.dialOptions(grpc.WithTransportCredentials(credentials.NewTLS(pki.ClientConfig(nil, rootCA.Pool(), pki.ManagerServerName))))...)
	if err != nil {
		return nil, errdefs.Unavailable("connect to %s: %v", remote, err)
	}
	defer conn.Close()
	ictx, cancel := clockwork.WithTimeout(ctx, n.cfg.Clock, joinTimeout)
	defer cancel()
	issued, err := api.NewCAClient(conn).IssueNodeCertificate(ictx, req)
	if err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	return issued, nil
}
