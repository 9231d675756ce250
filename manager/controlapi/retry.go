package controlapi

import (
	"context"
	"errors"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/raftstore"
)

// Writes of the Control API race with the system's own writes: task and
// node status, update status, the cluster's member list. A user's write
// conflicts only with what a user changed: each write reads the objects
// again inside its transaction, and when the transaction still loses a race
// at commit, it is built again from the new state (at most
// maxWriteAttempts times). A user's version that is older than the last
// write of the spec is a real conflict and is never retried.

// maxWriteAttempts bounds the attempts of one write that keeps losing races
// with status writes.
const maxWriteAttempts = 5

// staleVersion is a user's version older than the spec's last write.
type staleVersion struct{ error }

func (s staleVersion) Unwrap() error { return s.error }

// isStale reports whether err is a staleVersion conflict.
func isStale(err error) bool {
	var s staleVersion
	return errors.As(err, &s)
}

// update runs fn in a transaction, again when the commit lost a race with
// another write. fn must read everything it writes from tx.
func (s *Server) update(ctx context.Context, fn func(tx *raftstore.Tx) error) error {
	var err error
	for attempt := 0; attempt < maxWriteAttempts; attempt++ {
		err = s.store.Update(ctx, fn)
		if err == nil || !errdefs.IsConflict(err) || isStale(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// checkVersion compares the version a user read (0: none given) with an
// object at version cur whose spec was last written at base: a read after
// base saw the current spec, whatever status writes came since.
func checkVersion(kind, name string, read, cur, base uint64) error {
	if read == 0 || base < read && read <= cur {
		return nil
	}
	return staleVersion{errdefs.Conflict("%s %s changed since it was read (you have version %d; its spec was changed after version %d and it is now at version %d); read it again and retry",
		kind, name, read, base, cur)}
}
