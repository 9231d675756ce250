package node

import (
	"context"
	"net"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/manager"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
)

// Init creates a new swarm with this node as its first manager (`shoal
// swarm init`). A failed Init leaves the node as it was.
func (n *Node) Init(ctx context.Context, req *api.InitRequest) (resp *api.InitResponse, err error) {
	err = n.enterSwarm(func() (mb *member, state *nodeState, err error) {
		resp, mb, state, err = n.init(ctx, req)
		return mb, state, err
	})
	return resp, err
}

func (n *Node) init(ctx context.Context, req *api.InitRequest) (resp *api.InitResponse, mb *member, state *nodeState, err error) {
	listen := firstNonEmpty(req.GetListenAddr(), n.cfg.ListenAddr)
	if _, _, err := net.SplitHostPort(listen); err != nil {
		return nil, nil, nil, errdefs.InvalidArgument("invalid listen address %q: %v (expected host:port)", listen, err)
	}
	advertise, err := chooseAdvertise(firstNonEmpty(req.GetAdvertiseAddr(), n.cfg.AdvertiseAddr), listen)
	if err != nil {
		return nil, nil, nil, err
	}
	b, err := manager.NewBootstrap(req.GetSpec(), n.cfg.Clock)
	if err != nil {
		return nil, nil, nil, err
	}
	if dp := req.GetDataPathAddr(); dp != "" {
		if _, err := resolveDataPath(dp); err != nil {
			return nil, nil, nil, err
		}
	}
	state = &nodeState{ListenAddr: listen, AdvertiseAddr: advertise, DataPathAddr: req.GetDataPathAddr()}
	kr, st, err := n.persistIdentity(pki.NodeState{KeyPEM: b.KeyPEM, CertPEM: b.CertPEM, RootCAPEM: b.CA.CertPEM()}, state)
	if err != nil {
		return nil, nil, state, err
	}
	if mb, err = n.start(n.runCtx(), st, state, startBootstrap, ""); err != nil {
		return nil, nil, state, err
	}
	wctx, cancel := clockwork.WithTimeout(ctx, n.cfg.Clock, leaderTimeout)
	defer cancel()
	self := manager.FirstManager{Addr: advertise, Description: n.describe(), Availability: req.GetAvailability()}
	if err := mb.manager.Bootstrap(wctx, b, self); err != nil {
		return nil, mb, state, err
	}
	// Locked from now on; the key watcher would do it too, a moment later.
	if err := kr.Wrap(b.UnlockKey); err != nil {
		return nil, mb, state, err
	}
	mb.waitExec(ctx)
	n.log.Info("swarm initialized", "node", b.NodeID, "cluster", b.ClusterID, "advertise", advertise, "autolock", b.UnlockKey != nil)
	resp = &api.InitResponse{NodeId: b.NodeID, ClusterId: b.ClusterID, WorkerToken: b.WorkerToken, AdvertiseAddr: advertise,
		UnlockKey: pki.FormatUnlockKey(b.UnlockKey)}
	return resp, mb, state, nil
}

// persistIdentity writes a new member's keyring, key, certificates and
// state (init and join), and reads them back as the member will use them.
func (n *Node) persistIdentity(ns pki.NodeState, state *nodeState) (*pki.Keyring, *pki.LoadedState, error) {
	kr, err := pki.CreateKeyring(n.certDir())
	if err != nil {
		return nil, nil, err
	}
	n.setKeyring(kr)
	certs, err := n.certStore()
	if err != nil {
		return nil, nil, err
	}
	if err := certs.Save(ns); err != nil {
		return nil, nil, err
	}
	if err := saveState(n.statePath(), state); err != nil {
		return nil, nil, err
	}
	st, err := certs.Load()
	if err != nil {
		return nil, nil, err
	}
	return kr, st, nil
}
