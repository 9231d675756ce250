package node

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
func (n *Node) keyring() *pki.Keyring {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.keys
}

func (n *Node) setKeyring(kr *pki.Keyring) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.keys = kr
}

// outsideErr is what a call needing the swarm member gets while there is
// none: locked, still resuming, or not in a swarm.
func (n *Node) outsideErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.locked:
		return errSwarmLocked
	case n.resuming:
		return errResuming
	}
	return errNotInSwarm
}

// certStore is the node's certificate store, its key encrypted with the
// data key.
func (n *Node) certStore() (*pki.Store, error) {
	kr := n.keyring()
	if kr == nil {
		return nil, errNotInSwarm
	}
	keys, ok := kr.Keys()
	if !ok {
		return nil, errSwarmLocked
	}
	return pki.NewEncryptedStore(n.certDir(), keys.TLSKeyKey()), nil
}

// unlock gives a locked manager its unlock key. A malformed or wrong key
// is refused and changes nothing; the right one opens the keyring and the
// member starts (manager, then agent) without a restart.
func (n *Node) unlock(req *api.UnlockRequest) error {
	var kr *pki.Keyring
	var state *nodeState
	err := n.reserve("this node is busy joining, leaving or unlocking; wait for it to finish", func() error {
		switch {
		case n.member != nil, n.resuming:
			return errdefs.FailedPrecondition("swarm is not locked")
		case !n.locked && !n.pending:
			return errdefs.FailedPrecondition("This node is not part of a swarm")
		}
		kr, state = n.keys, n.state
		return nil
	})
	if err != nil {
		return err
	}
	defer n.release()
	raw, err := pki.ParseUnlockKey(req.GetUnlockKey())
	if err != nil {
		return err
	}
	if err := kr.Unlock(raw); err != nil {
		n.log.Warn("swarm unlock refused: wrong key", "needs_unlock_key_fingerprint", kr.WrappedWith())
		return err
	}
	n.log.Info("unlocked: starting the member")
	mb, err := n.startRecorded(n.runCtx(), state)
	if err != nil {
		kr.Lock()
		return err
	}
	n.mu.Lock()
	n.member, n.locked, n.lockedID = mb, false, pki.Identity{}
	n.mu.Unlock()
	return nil
}

// wantedKEK is the unlock key a manager's data key must be wrapped with
// for cluster c; nil means the node-local key.
func wantedKEK(c *api.Cluster) []byte {
	if c.GetSpec().GetEncryption().GetAutoLockManagers() && len(c.GetUnlockKey()) == pki.UnlockKeySize {
		return c.GetUnlockKey()
	}
	return nil
}

// watchUnlockKey keeps this manager's data key wrapped with the cluster's
// current unlock key (or the node-local key when autolock is off): it
// reads the Cluster object, then follows its changes. A manager that just
// joined re-wraps as soon as it has applied the Cluster object.
func (mb *member) watchUnlockKey(m *manager.Manager) {
	defer mb.wg.Done()
	w := keyWatcher{kr: mb.keys, n: mb.n}
	clock := mb.n.cfg.Clock
	retry := clock.NewTicker(keyRetry)
	defer retry.Stop()
	for mb.ctx.Err() == nil {
		watch := m.Store().ViewAndWatch(raftstore.WatchOptions{Kinds: []string{raftstore.KindCluster}}, func(tx raftstore.ReadTx) {
			if cs := tx.Clusters(); len(cs) > 0 {
				w.want, w.have = wantedKEK(cs[0]), true
			}
		})
		w.rewrap()
		if !w.follow(mb.ctx, watch.C, retry.Chan()) {
			watch.Close()
			return
		}
		// Cut off or reset: read the Cluster again, after a pause.
		select {
		case <-mb.ctx.Done():
			return
		case <-clock.After(watchPause):
		}
	}
}

// watchPause is how long a cut-off watch waits before reading again.
const watchPause = 100 * time.Millisecond

// keyWatcher is watchUnlockKey's state: the KEK wanted and whether the
// last re-wrap failed.
type keyWatcher struct {
	n            *Node
	kr           *pki.Keyring
	want         []byte
	have, failed bool
}

// follow re-wraps on each change of the Cluster object and retries a
// failed re-wrap on each retry tick. It returns false when ctx ends, true
// when the watch is cut off.
func (w *keyWatcher) follow(ctx context.Context, events <-chan raftstore.Event, retry <-chan time.Time) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case ev, ok := <-events:
			if !ok {
				return true
			}
			if c, isCluster := ev.Object.(*api.Cluster); isCluster && ev.Action != raftstore.ActionDelete {
				w.want, w.have = wantedKEK(c), true
				w.rewrap()
			}
		case <-retry:
			if w.failed {
				w.rewrap()
			}
		}
	}
}

func (w *keyWatcher) rewrap() {
	if !w.have {
		return
	}
	before := w.kr.WrappedWith()
	if err := w.kr.Wrap(w.want); err != nil {
		w.failed = true
		w.n.log.Error("re-wrapping the data key with the cluster's unlock key failed; will retry", "err", err)
		return
	}
	w.failed = false
	if after := w.kr.WrappedWith(); after != before {
		if after == "" {
			w.n.log.Info("autolock off: the data key is now wrapped with the node's own key")
		} else {
			w.n.log.Info("the data key is now wrapped with the cluster's unlock key", "unlock_key_fingerprint", after)
		}
	}
}
