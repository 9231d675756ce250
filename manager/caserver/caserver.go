// Package caserver is the CA service of a manager: it hands the root CA to
// joining nodes, issues a certificate to a node that presents a valid join
// token (the token's secret decides the role; the CSR's subject is
// ignored), and renews certificates of nodes already in the cluster with the
// role the cluster says they have now (so promotions and demotions reach the
// certificate). The CA key is read from the replicated Cluster object, so
// any manager can sign; writes go to the leader's store.
//
// Server is safe for concurrent use and holds no state of its own.
package caserver

import (
	"context"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/fwdmeta"
	"github.com/shoal-project/shoal/internal/ids"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Server implements api.CAServer.
type Server struct {
	api.UnimplementedCAServer
	store *raftstore.Store
	clock clockwork.Clock
	// isRaftMember tells whether a node is still a raft member: a demoted
	// manager gets its worker certificate only once it has left raft.
	isRaftMember func(nodeID string) bool
}

// New returns a CA server over the store.
func New(store *raftstore.Store, clock clockwork.Clock, isRaftMember func(string) bool) *Server {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	if isRaftMember == nil {
		isRaftMember = func(string) bool { return false }
	}
	return &Server{store: store, clock: clock, isRaftMember: isRaftMember}
}

var _ api.CAServer = (*Server)(nil)

func (s *Server) cluster() (*api.Cluster, error) {
	var c *api.Cluster
	s.store.View(func(tx raftstore.ReadTx) {
		if cs := tx.Clusters(); len(cs) > 0 {
			c = cs[0]
		}
	})
	if c == nil || c.GetRootCa() == nil {
		return nil, errdefs.Unavailable("the swarm is still initializing; retry")
	}
	return c, nil
}

func (s *Server) signer(c *api.Cluster) (*pki.RootCA, error) {
	return pki.ParseRootCA(c.RootCa.CaCert, c.RootCa.CaKey, s.clock)
}

func expiry(c *api.Cluster) time.Duration {
	return api.Dur(c.GetSpec().GetCaConfig().GetNodeCertExpiry(), api.DefaultNodeCertExpiry)
}

// GetRootCACertificate returns the root CA certificate. Joiners check it
// against their token's digest before they send the token's secret.
func (s *Server) GetRootCACertificate(context.Context, *api.GetRootCACertificateRequest) (*api.GetRootCACertificateResponse, error) {
	c, err := s.cluster()
	if err != nil {
		return nil, err
	}
	return &api.GetRootCACertificateResponse{Certificate: c.RootCa.CaCert}, nil
}

// IssueNodeCertificate admits a new node: the token decides its role, a
// fresh node ID is assigned, and the node is recorded in the store.
func (s *Server) IssueNodeCertificate(ctx context.Context, req *api.IssueNodeCertificateRequest) (*api.IssueNodeCertificateResponse, error) {
	c, err := s.cluster()
	if err != nil {
		return nil, err
	}
	role, err := pki.RoleForToken(req.GetToken(), c.RootCa.JoinTokens)
	if err != nil {
		return nil, err
	}
	ca, err := s.signer(c)
	if err != nil {
		return nil, err
	}
	nodeID := ids.New()
	cert, err := ca.Sign(req.GetCsr(), nodeID, role, c.Id, expiry(c))
	if err != nil {
		return nil, err
	}
	desc := req.GetDescription()
	if desc == nil {
		desc = &api.NodeDescription{}
	}
	node := &api.Node{
		Id:          nodeID,
		Spec:        &api.NodeSpec{DesiredRole: role, Membership: api.NodeSpec_ACCEPTED, Availability: req.GetAvailability()},
		Description: desc,
		Status:      &api.NodeStatus{State: api.NodeStatus_UNKNOWN, Message: "joining"},
		Role:        role,
	}
	if err := s.store.Update(ctx, func(tx *raftstore.Tx) error { return tx.Create(node) }); err != nil {
		return nil, err
	}
	return &api.IssueNodeCertificateResponse{NodeId: nodeID, Role: role, Certificate: cert, RootCa: c.RootCa.CaCert, ClusterId: c.Id}, nil
}

// RenewNodeCertificate issues a new certificate to a node of the cluster,
// with the role the cluster now wants it to have.
func (s *Server) RenewNodeCertificate(ctx context.Context, req *api.RenewNodeCertificateRequest) (*api.RenewNodeCertificateResponse, error) {
	// A follower forwards renewals to the leader; the node renewed is the
	// one the call is for, not the forwarding manager.
	nodeID, ok := fwdmeta.Caller(ctx)
	if !ok {
		return nil, errdefs.New(errdefs.ErrUnauthenticated, "renewal needs the node's current certificate")
	}
	c, err := s.cluster()
	if err != nil {
		return nil, err
	}
	var node *api.Node
	s.store.View(func(tx raftstore.ReadTx) { node = tx.Node(nodeID) })
	if node == nil {
		return nil, errdefs.PermissionDenied("node %s is not part of this swarm", nodeID)
	}
	role := node.GetSpec().GetDesiredRole()
	if role == api.NodeRole_WORKER && s.isRaftMember(nodeID) {
		// Membership changes before the certificate: until the role
		// manager has removed it from raft, it stays a manager.
		role = api.NodeRole_MANAGER
	}
	ca, err := s.signer(c)
	if err != nil {
		return nil, err
	}
	cert, err := ca.Sign(req.GetCsr(), nodeID, role, c.Id, expiry(c))
	if err != nil {
		return nil, err
	}
	if node.Role != role {
		err := s.store.Update(ctx, func(tx *raftstore.Tx) error {
			n := tx.Node(nodeID)
			if n == nil {
				return errdefs.NotFound("node %s not found", nodeID)
			}
			n = proto.Clone(n).(*api.Node)
			n.Role = role
			return tx.Update(n)
		})
		if err != nil {
			return nil, err
		}
	}
	return &api.RenewNodeCertificateResponse{Certificate: cert, Role: role}, nil
}
