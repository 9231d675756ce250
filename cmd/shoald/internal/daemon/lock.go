package daemon

import (
	"context"
	"time"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/manager"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Encryption at rest and autolock.
//
// Every node in a swarm has a keyring (pki.Keyring, in certificates/): a
// data key (DEK) wrapped by a key-encrypting key (KEK). Subkeys of the DEK
// encrypt the raft log (raftstore) and the node's TLS key (pki.Store). The
// KEK is the node-local key when autolock is off (and on workers), and the
// swarm's unlock key when it is on: then a restarted manager is locked
// until `shoal swarm unlock` gives it the key. Each manager watches the
// Cluster object and re-wraps its DEK whenever the unlock key changes
// (autolock on or off, rotation).

// errSwarmLocked is what every call but Info and Unlock gets on a locked
// manager (Docker's words).
var errSwarmLocked = errdefs.New(errdefs.ErrUnavailable,
	"Swarm is encrypted and needs to be unlocked before it can be used. Please use \"shoal swarm unlock\" to unlock it.")

// keyring is the node's keyring, nil when not in a swarm.
func (d *Daemon) keyring() *pki.Keyring {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.keys
}

func (d *Daemon) setKeyring(kr *pki.Keyring) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.keys = kr
}

func (d *Daemon) isLocked() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.locked
}

// dataKeys returns the node's open data keys.
func (d *Daemon) dataKeys() (pki.DataKeys, error) {
	kr := d.keyring()
	if kr == nil {
		return pki.DataKeys{}, errNotInSwarm
	}
	keys, ok := kr.Keys()
	if !ok {
		return pki.DataKeys{}, errSwarmLocked
	}
	return keys, nil
}

// certStore is the node's certificate store, its key encrypted with the
// data key.
func (d *Daemon) certStore() (*pki.Store, error) {
	keys, err := d.dataKeys()
	if err != nil {
		return nil, err
	}
	return pki.NewEncryptedStore(d.certDir(), keys.TLSKeyKey()), nil
}

// Unlock gives a locked manager its unlock key. A malformed or wrong key
// is refused and changes nothing; the right one opens the keyring and the
// member starts (manager, then agent) without a restart.
func (l *localNode) Unlock(ctx context.Context, req *api.UnlockRequest) (*api.UnlockResponse, error) {
	d := l.d
	d.mu.Lock()
	switch {
	case d.node != nil:
		d.mu.Unlock()
		return nil, errdefs.FailedPrecondition("swarm is not locked")
	case d.pending:
		d.mu.Unlock()
		return nil, errdefs.FailedPrecondition("this node is busy joining, leaving or unlocking; wait for it to finish")
	case !d.locked:
		d.mu.Unlock()
		return nil, errdefs.FailedPrecondition("This node is not part of a swarm")
	}
	d.pending = true
	kr, state := d.keys, d.state
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.pending = false
		d.mu.Unlock()
	}()
	raw, err := pki.ParseUnlockKey(req.GetUnlockKey())
	if err != nil {
		return nil, err
	}
	if err := kr.Unlock(raw); err != nil {
		d.log.Warn("swarm unlock refused: wrong key", "needs_unlock_key_fingerprint", kr.WrappedWith())
		return nil, err
	}
	d.log.Info("unlocked: starting the member")
	n, err := d.startUnlocked(d.ctx, state)
	if err != nil {
		kr.Lock()
		return nil, err
	}
	d.mu.Lock()
	d.node, d.locked, d.lockedID = n, false, pki.Identity{}
	d.mu.Unlock()
	return &api.UnlockResponse{}, nil
}

// wantedKEK is the unlock key a manager's data key must be wrapped with
// for cluster c; nil means the node-local key.
func wantedKEK(c *api.Cluster) []byte {
	if c.GetSpec().GetEncryption().GetAutoLockManagers() && len(c.GetUnlockKey()) == pki.UnlockKeySize {
		return c.GetUnlockKey()
	}
	return nil
}

// keyRetry is how long a failed re-wrap waits before it is tried again.
const keyRetry = 5 * time.Second

// watchUnlockKey keeps this manager's data key wrapped with the cluster's
// current unlock key (or the node-local key when autolock is off): it
// reads the Cluster object, then follows its changes. A manager that just
// joined re-wraps as soon as it has applied the Cluster object.
func (n *nodeRun) watchUnlockKey(m *manager.Manager) {
	defer n.wg.Done()
	kr := n.keys
	var want []byte
	var have, failed bool
	rewrap := func() {
		if !have {
			return
		}
		before := kr.WrappedWith()
		if err := kr.Wrap(want); err != nil {
			failed = true
			n.d.log.Error("re-wrapping the data key with the cluster's unlock key failed; will retry", "err", err)
			return
		}
		failed = false
		if after := kr.WrappedWith(); after != before {
			if after == "" {
				n.d.log.Info("autolock off: the data key is now wrapped with the node's own key")
			} else {
				n.d.log.Info("the data key is now wrapped with the cluster's unlock key", "unlock_key_fingerprint", after)
			}
		}
	}
	retry := time.NewTicker(keyRetry)
	defer retry.Stop()
	for n.ctx.Err() == nil {
		w := m.Store().ViewAndWatch(raftstore.WatchOptions{Kinds: []string{raftstore.KindCluster}}, func(tx raftstore.ReadTx) {
			if cs := tx.Clusters(); len(cs) > 0 {
				want, have = wantedKEK(cs[0]), true
			}
		})
		rewrap()
	events:
		for {
			select {
			case <-n.ctx.Done():
				w.Close()
				return
			case ev, ok := <-w.C:
				if !ok {
					break events // cut off or reset: read it again
				}
				if c, isCluster := ev.Object.(*api.Cluster); isCluster && ev.Action != raftstore.ActionDelete {
					want, have = wantedKEK(c), true
					rewrap()
				}
			case <-retry.C:
				if failed {
					rewrap()
				}
			}
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}
