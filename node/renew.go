package node

import (
	"context"
	"crypto/x509"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/worker"
)

// watchRole renews the node certificate at a random 50-80 % of its life,
// and at once when the agent reports that the cluster wants this node in
// another role (promote, demote): role changes are events from the agent's
// sessions, not polls. A certificate with a new role restarts the member: a
// promoted worker starts a manager and joins raft; a demoted manager, once
// raft has let it go, drops its raft log and goes on as a worker. While the
// role the cluster wants and the certificate's differ (a demoted manager
// still leaving raft), renewal is retried every roleRetry. It also records
// the managers the agent knows, so a restart finds them even if the first
// is gone.
func (mb *member) watchRole() {
	defer mb.wg.Done()
	clock := mb.n.cfg.Clock
	rng := rand.New(rand.NewPCG(uint64(clock.Now().UnixNano()), 0))
	timer := clock.NewTimer(pki.RenewalTime(mb.kp.Leaf(), rng).Sub(clock.Now()))
	defer timer.Stop()
	want := mb.identity.Role
	for {
		select {
		case <-mb.ctx.Done():
			return
		case u := <-mb.updates:
			mb.persistManagers(u.Managers)
			if spec := u.Node.GetSpec(); spec != nil {
				want = spec.GetDesiredRole()
			}
			if want == mb.identity.Role {
				continue
			}
		case <-timer.Chan():
		}
		role, err := mb.renew()
		next := roleRetry
		switch {
		case err != nil:
			mb.n.log.Warn("certificate renewal failed; will retry", "err", err)
		case role != mb.identity.Role:
			mb.n.spawn(func() { mb.n.changeRole(mb, role) })
			return
		case want == mb.identity.Role:
			next = pki.RenewalTime(mb.kp.Leaf(), rng).Sub(clock.Now())
		}
		resetTimer(timer, next)
	}
}

// resetTimer re-arms t, dropping a tick it may hold.
func resetTimer(t clockwork.Timer, d time.Duration) {
	if !t.Stop() {
		select {
		case <-t.Chan():
		default:
		}
	}
	t.Reset(d)
}

// persistManagers records the manager addresses the agent knows.
func (mb *member) persistManagers(ms []string) {
	if len(ms) == 0 || slices.Equal(ms, mb.state.Managers) {
		return
	}
	st := *mb.state
	st.Managers = ms
	if err := saveState(mb.n.statePath(), &st); err == nil {
		mb.state.Managers = ms
	}
}

// renew asks a manager for a new certificate (with a new key) and installs
// it; it returns the role the certificate carries.
func (mb *member) renew() (api.NodeRole, error) {
	csr, key, err := pki.GenerateCSR()
	if err != nil {
		return 0, err
	}
	var lastErr error = errdefs.Unavailable("no manager known")
	for _, addr := range mb.knownManagers() {
		ctx, cancel := clockwork.WithTimeout(mb.ctx, mb.n.cfg.Clock, renewTimeout)
		resp, err := mb.requestRenewal(ctx, addr, csr)
		cancel()
		if err != nil {
			lastErr = err
			continue
		}
		return mb.install(addr, resp, key)
	}
	return 0, lastErr
}

func (mb *member) requestRenewal(ctx context.Context, addr string, csr []byte) (*api.RenewNodeCertificateResponse, error) {
	conn, err := mb.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	resp, err := api.NewCAClient(conn).RenewNodeCertificate(ctx, &api.RenewNodeCertificateRequest{Csr: csr})
	return resp, errdefs.FromGRPC(err)
}

// install checks a renewed certificate and saves it; in the same role it
// also replaces the certificate the member's connections present.
func (mb *member) install(addr string, resp *api.RenewNodeCertificateResponse, key []byte) (api.NodeRole, error) {
	// The certificate must be this node's, of this cluster, and signed by
	// the root CA it trusts.
	cert, err := pki.ParseCertificatePEM(resp.Certificate)
	if err != nil {
		return 0, err
	}
	id, err := pki.IdentityFromCert(cert)
	if err != nil {
		return 0, err
	}
	if id.NodeID != mb.identity.NodeID || id.ClusterID != mb.identity.ClusterID {
		return 0, errdefs.Internal("the manager at %s returned a certificate for %s, not for this node; refusing it", addr, id)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: mb.roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return 0, errdefs.Internal("the certificate from %s does not chain to this swarm's root CA: %v", addr, err)
	}
	keys, ok := mb.keys.Keys()
	if !ok {
		return 0, errSwarmLocked
	}
	if err := pki.NewEncryptedStore(mb.n.certDir(), keys.TLSKeyKey()).Save(pki.NodeState{KeyPEM: key, CertPEM: resp.Certificate, RootCAPEM: mb.rootPEM}); err != nil {
		return 0, err
	}
	if resp.Role == mb.identity.Role {
		if err := mb.kp.Swap(resp.Certificate, key); err != nil {
			return 0, err
		}
	}
	mb.n.log.Info("node certificate renewed", "role", roleName(resp.Role), "expires", mb.kp.Leaf().NotAfter)
	return resp.Role, nil
}

// changeRole restarts the member mb in a new role.
func (n *Node) changeRole(mb *member, role api.NodeRole) {
	err := n.reserve("", func() error {
		if n.member != mb || n.pending {
			return errStale // left, joined again, or a leave is under way
		}
		return nil
	})
	if err != nil {
		return
	}
	defer n.release()
	n.log.Info("changing role", "from", roleName(mb.identity.Role), "to", roleName(role))
	mb.stop()
	if role == api.NodeRole_WORKER {
		// Raft let this member go; its log is of no use any more.
		_ = os.RemoveAll(filepath.Dir(n.raftPath()))
	}
	certs, err := n.certStore()
	if err != nil {
		n.log.Error("role change: the node's keyring is not open", "err", err)
		return
	}
	st, err := certs.Load()
	if err != nil {
		n.log.Error("role change: reading the new certificate failed", "err", err)
		return
	}
	if role != api.NodeRole_MANAGER {
		next, err := n.start(n.runCtx(), st, mb.state, startRestart, "")
		if err != nil {
			n.log.Error("role change: starting in the new role failed", "role", roleName(role), "err", err)
			return
		}
		n.setMember(next)
		return
	}
	// Joining raft may fail for a moment (the leader changing, another
	// membership change in flight): try the known managers in turn, with
	// a growing pause, rather than leave the node with no role at all.
	var vias []string
	for _, m := range mb.knownManagers() {
		if m != mb.state.AdvertiseAddr {
			vias = append(vias, m)
		}
	}
	if len(vias) == 0 {
		vias = []string{""}
	}
	pause := time.Second
	for attempt := 1; ; attempt++ {
		via := vias[(attempt-1)%len(vias)]
		next, err := n.start(n.runCtx(), st, mb.state, startJoin, via)
		if err == nil {
			n.setMember(next)
			return
		}
		if attempt >= roleChangeAttempts || n.runCtx().Err() != nil {
			n.log.Error("role change: could not join the managers; this node runs neither agent nor manager now. "+
				"Demote and promote it again, or run `shoal swarm leave --force` on it and join again", "attempts", attempt, "err", err)
			return
		}
		n.log.Warn("role change: joining the managers failed; trying again", "via", via, "attempt", attempt, "retry_in", pause, "err", err)
		select {
		case <-n.runCtx().Done():
			return
		case <-n.cfg.Clock.After(pause):
		}
		pause = min(2*pause, 15*time.Second)
	}
}

// roleChangeAttempts bounds the tries of a promoted node to join raft:
// each waits up to raftJoinTimeout, with up to 15 s between them. The
// node refuses `swarm leave` meanwhile, so the tries must end.
const roleChangeAttempts = 8

func (n *Node) setMember(next *member) {
	n.mu.Lock()
	n.member = next
	n.mu.Unlock()
}

// errStale: the member a change was for is no longer the node's.
var errStale = errdefs.FailedPrecondition("the member changed meanwhile")

// watched by the agent's OnNodeUpdate.
var _ func(worker.NodeUpdate) = (*member)(nil).publish
