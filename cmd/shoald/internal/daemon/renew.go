package daemon

import (
	"context"
	"crypto/x509"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
)

// roleCheck is how often a member compares its role with the cluster's.
const roleCheck = time.Second

// watchRole renews the node certificate at a random 50-80 % of its life,
// and at once when the cluster wants this node in another role (promote,
// demote). A new role restarts the member: a promoted worker starts a
// manager and joins raft; a demoted manager, once raft has let it go,
// drops its raft log and goes on as a worker. It also records the managers
// the agent knows, so a restart finds them even if the first is gone.
func (n *nodeRun) watchRole() {
	defer n.wg.Done()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	renewAt := pki.RenewalTime(n.kp.Leaf(), rng)
	tick := time.NewTicker(roleCheck)
	defer tick.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		}
		n.persistManagers()
		want := n.wantedRole()
		if time.Now().Before(renewAt) && want == n.identity.Role {
			continue
		}
		role, err := n.renew()
		if err != nil {
			n.d.log.Warn("certificate renewal failed; will retry", "err", err)
			continue
		}
		renewAt = pki.RenewalTime(n.kp.Leaf(), rng)
		if role != n.identity.Role {
			go n.d.changeRole(n, role)
			return
		}
	}
}

// wantedRole is the role the cluster records for this node.
func (n *nodeRun) wantedRole() api.NodeRole {
	n.agentMu.Lock()
	a := n.agent
	n.agentMu.Unlock()
	if a == nil {
		return n.identity.Role
	}
	node := a.Node()
	if node == nil || node.GetSpec() == nil {
		return n.identity.Role
	}
	return node.GetSpec().GetDesiredRole()
}

func (n *nodeRun) persistManagers() {
	ms := n.knownManagers()
	if len(ms) == 0 || slices.Equal(ms, n.state.Managers) {
		return
	}
	st := *n.state
	st.Managers = ms
	if err := saveState(n.d.statePath(), &st); err == nil {
		n.state.Managers = ms
	}
}

// renew asks a manager for a new certificate (with a new key) and installs
// it; it returns the role the certificate carries.
func (n *nodeRun) renew() (api.NodeRole, error) {
	csr, key, err := pki.GenerateCSR()
	if err != nil {
		return 0, err
	}
	var lastErr error = errdefs.Unavailable("no manager known")
	for _, addr := range n.knownManagers() {
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		conn, err := n.dial(ctx, addr)
		if err != nil {
			cancel()
			lastErr = err
			continue
		}
		resp, err := api.NewCAClient(conn).RenewNodeCertificate(ctx, &api.RenewNodeCertificateRequest{Csr: csr})
		cancel()
		if err != nil {
			lastErr = errdefs.FromGRPC(err)
			continue
		}
		// Check before saving: the certificate must be this node's, of this
		// cluster, and signed by the root CA it trusts.
		cert, err := pki.ParseCertificatePEM(resp.Certificate)
		if err != nil {
			return 0, err
		}
		id, err := pki.IdentityFromCert(cert)
		if err != nil {
			return 0, err
		}
		if id.NodeID != n.identity.NodeID || id.ClusterID != n.identity.ClusterID {
			return 0, errdefs.Internal("the manager at %s returned a certificate for %s, not for this node; refusing it", addr, id)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: n.roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return 0, errdefs.Internal("the certificate from %s does not chain to this swarm's root CA: %v", addr, err)
		}
		keys, ok := n.keys.Keys()
		if !ok {
			return 0, errSwarmLocked
		}
		if err := pki.NewEncryptedStore(n.d.certDir(), keys.TLSKeyKey()).Save(pki.NodeState{KeyPEM: key, CertPEM: resp.Certificate, RootCAPEM: n.rootPEM}); err != nil {
			return 0, err
		}
		if resp.Role == n.identity.Role {
			if err := n.kp.Swap(resp.Certificate, key); err != nil {
				return 0, err
			}
		}
		n.d.log.Info("node certificate renewed", "role", roleName(resp.Role), "expires", n.kp.Leaf().NotAfter)
		return resp.Role, nil
	}
	return 0, lastErr
}

// changeRole restarts the member n in a new role.
func (d *Daemon) changeRole(n *nodeRun, role api.NodeRole) {
	d.mu.Lock()
	if d.node != n || d.pending {
		d.mu.Unlock()
		return // left, joined again, or a leave is under way
	}
	d.pending = true
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.pending = false
		d.mu.Unlock()
	}()
	d.log.Info("changing role", "from", roleName(n.identity.Role), "to", roleName(role))
	n.stop()
	if role == api.NodeRole_WORKER {
		// Raft let this member go; its log is of no use any more.
		_ = os.RemoveAll(filepath.Dir(d.raftPath()))
	}
	certs, err := d.certStore()
	if err != nil {
		d.log.Error("role change: the node's keyring is not open", "err", err)
		return
	}
	st, err := certs.Load()
	if err != nil {
		d.log.Error("role change: reading the new certificate failed", "err", err)
		return
	}
	var next *nodeRun
	if role == api.NodeRole_MANAGER {
		via := ""
		for _, m := range n.knownManagers() {
			if m != n.state.AdvertiseAddr {
				via = m
				break
			}
		}
		next, err = d.startWith(d.ctx, st, n.state, startJoin, via)
	} else {
		next, err = d.start(d.ctx, st, n.state, startRestart)
	}
	if err != nil {
		d.log.Error("role change: starting in the new role failed", "role", roleName(role), "err", err)
		return
	}
	d.mu.Lock()
	d.node = next
	d.mu.Unlock()
}
