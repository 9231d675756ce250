package daemon

import (
	"context"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
)

// joinTimeout bounds each step of a join.
const joinTimeout = 15 * time.Second

// Join makes this node a member of an existing swarm. The root CA is
// downloaded and checked against the token's digest before the token's
// secret leaves this node; the token decides the role.
func (l *localNode) Join(ctx context.Context, req *api.JoinRequest) (resp *api.JoinResponse, err error) {
	d := l.d
	err = d.enterSwarm(func() (n *nodeRun, state *nodeState, err error) {
		resp, n, state, err = l.join(ctx, req)
		return n, state, err
	})
	return resp, err
}

func (l *localNode) join(ctx context.Context, req *api.JoinRequest) (resp *api.JoinResponse, n *nodeRun, state *nodeState, err error) {
	d := l.d
	remote := req.GetRemoteAddr()
	if _, _, err := net.SplitHostPort(remote); err != nil {
		return nil, n, state, errdefs.InvalidArgument("invalid manager address %q: expected host:port", remote)
	}
	tok, err := pki.ParseJoinToken(req.GetJoinToken())
	if err != nil {
		return nil, n, state, err
	}
	listen := firstNonEmpty(req.GetListenAddr(), d.cfg.ListenAddr)
	advertise, err := chooseAdvertise(firstNonEmpty(req.GetAdvertiseAddr(), d.cfg.AdvertiseAddr), listen)
	if err != nil {
		return nil, n, state, err
	}

	// 1. The root CA, over TLS that cannot verify anything yet; pinned
	// against the token's digest before anything secret is sent.
	rootCA, err := fetchRootCA(ctx, remote, tok)
	if err != nil {
		return nil, n, state, err
	}
	// 2. Now verified TLS to the manager; the secret goes out.
	csr, key, err := pki.GenerateCSR()
	if err != nil {
		return nil, n, state, err
	}
	conn, err := grpc.NewClient(remote, grpc.WithTransportCredentials(credentials.NewTLS(pki.ClientConfig(nil, rootCA.Pool(), pki.ManagerServerName))))
	if err != nil {
		return nil, n, state, errdefs.Unavailable("connect to %s: %v", remote, err)
	}
	defer conn.Close()
	ictx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	issued, err := api.NewCAClient(conn).IssueNodeCertificate(ictx, &api.IssueNodeCertificateRequest{
		Csr: csr, Token: req.GetJoinToken(), Availability: req.GetAvailability(),
		Description: d.describe(), AdvertiseAddr: advertise,
	})
	if err != nil {
		return nil, n, state, errdefs.FromGRPC(err)
	}
	kr, err := pki.CreateKeyring(d.certDir())
	if err != nil {
		return nil, n, state, err
	}
	d.setKeyring(kr)
	certs, err := d.certStore()
	if err != nil {
		return nil, n, state, err
	}
	if err := certs.Save(pki.NodeState{KeyPEM: key, CertPEM: issued.Certificate, RootCAPEM: rootCA.CertPEM()}); err != nil {
		return nil, n, state, err
	}
	state = &nodeState{ListenAddr: listen, AdvertiseAddr: advertise, Managers: []string{remote}}
	if err := saveState(d.statePath(), state); err != nil {
		return nil, n, state, err
	}
	st, err := certs.Load()
	if err != nil {
		return nil, n, state, err
	}
	n, err = d.startJoined(st, state, remote)
	if err != nil {
		return nil, n, state, err
	}
	d.log.Info("joined the swarm", "node", issued.NodeId, "role", roleName(issued.Role), "via", remote)
	resp = &api.JoinResponse{NodeId: issued.NodeId, Role: issued.Role}
	return resp, n, state, nil
}

// fetchRootCA downloads the swarm's root CA and checks it against the
// token. A mismatch aborts the join before the token's secret is sent.
func fetchRootCA(ctx context.Context, remote string, tok pki.JoinToken) (*pki.RootCA, error) {
	conn, err := grpc.NewClient(remote, grpc.WithTransportCredentials(credentials.NewTLS(pki.BootstrapClientConfig())))
	if err != nil {
		return nil, errdefs.Unavailable("connect to %s: %v", remote, err)
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	resp, err := api.NewCAClient(conn).GetRootCACertificate(cctx, &api.GetRootCACertificateRequest{})
	if err != nil {
		return nil, errdefs.Unavailable("could not reach a manager at %s to join the swarm: %v", remote, errdefs.FromGRPC(err))
	}
	return pki.CheckRootCAForToken(resp.GetCertificate(), tok)
}

// startJoined starts a member that just joined; a manager first becomes a
// raft member through the manager it joined.
func (d *Daemon) startJoined(st *pki.LoadedState, state *nodeState, remote string) (*nodeRun, error) {
	mode := startRestart
	if st.Identity.Role == api.NodeRole_MANAGER {
		mode = startJoin
	}
	d.mu.Lock()
	ctx := d.ctx
	d.mu.Unlock()
	return d.startWith(ctx, st, state, mode, remote)
}
