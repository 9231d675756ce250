package dispatcher

import (
	"context"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// nodeWriter commits node status changes (a session's start, a node marked
// down) in batches, like statusWriter for tasks: thousands of agents
// opening sessions at once cost one raft write per round, not one each. A
// change that leaves its node as it was writes nothing. Pending changes
// are bounded by the callers waiting (one per session or expiry).
type nodeWriter struct {
	store *raftstore.Store

	mu      sync.Mutex
	pending []nodeChange
	kick    chan struct{}
}

type nodeChange struct {
	nodeID string
	change func(*api.Node)
	done   chan error // buffered: the writer never blocks on it
}

// nodeBatch bounds the changes of one transaction (a node with its
// description is about 1-2 KiB; the transaction limit is 1.5 MiB).
const nodeBatch = 200

func newNodeWriter(store *raftstore.Store) *nodeWriter {
	return &nodeWriter{store: store, kick: make(chan struct{}, 1)}
}

// submit queues a change to node nodeID and waits until the batch holding
// it commits (NotFound when the node does not exist).
func (w *nodeWriter) submit(ctx context.Context, nodeID string, change func(*api.Node)) error {
	return w.submitAll(ctx, []string{nodeID}, change)[0]
}

// submitAll queues change for each of nodeIDs at once, so that they share
// transactions, and waits for them all: the outcome of each, in order.
func (w *nodeWriter) submitAll(ctx context.Context, nodeIDs []string, change func(*api.Node)) []error {
	cs := make([]nodeChange, len(nodeIDs))
	w.mu.Lock()
	for i, id := range nodeIDs {
		cs[i] = nodeChange{nodeID: id, change: change, done: make(chan error, 1)}
		w.pending = append(w.pending, cs[i])
	}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	errs := make([]error, len(cs))
	for i, c := range cs {
		select {
		case errs[i] = <-c.done:
		case <-ctx.Done():
			errs[i] = errdefs.DeadlineExceeded("node status not committed in time: %v", ctx.Err())
		}
	}
	return errs
}

func (w *nodeWriter) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			w.mu.Lock()
			for _, c := range w.pending {
				c.done <- errdefs.Unavailable("dispatcher stopped")
			}
			w.pending = nil
			w.mu.Unlock()
			return
		case <-w.kick:
		}
		// No gathering window: the changes that arrive while one batch
		// commits make the next (group commit), so a lone change is not
		// delayed.
		w.mu.Lock()
		batch := w.pending
		w.pending = nil
		w.mu.Unlock()
		for len(batch) > 0 {
			part := batch[:min(len(batch), nodeBatch)]
			batch = batch[len(part):]
			errs := w.commit(ctx, part)
			for i, c := range part {
				c.done <- errs[i]
			}
		}
	}
}

// commit applies part's changes, in order, in one transaction, retrying
// conflicts a few times; it returns each change's outcome. A batch whose
// changes leave every node as it is (agents reconnecting after a
// failover) is settled from a read, without the store's write transaction,
// which the raft apply loop also needs.
func (w *nodeWriter) commit(ctx context.Context, part []nodeChange) []error {
	errs := make([]error, len(part))
	if w.noop(part, errs) {
		return errs
	}
	err := updateRetrying(ctx, w.store, func(tx *raftstore.Tx) error {
		for _, n := range changedNodes(tx.ReadTx, part, errs) {
			if err := tx.Update(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
}

// noop reports whether part changes no node, filling errs (NotFound for a
// missing node) when it does not.
func (w *nodeWriter) noop(part []nodeChange, errs []error) bool {
	same := true
	w.store.View(func(tx raftstore.ReadTx) { same = len(changedNodes(tx, part, errs)) == 0 })
	return same
}

// changedNodes applies part's changes to copies of the nodes as tx has them
// and returns the copies that differ; errs[i] is NotFound for a change whose
// node is gone, nil otherwise.
func changedNodes(tx raftstore.ReadTx, part []nodeChange, errs []error) []*api.Node {
	cur, next := map[string]*api.Node{}, map[string]*api.Node{}
	for i, c := range part {
		errs[i] = nil
		n := next[c.nodeID]
		if n == nil {
			old := tx.Node(c.nodeID)
			if old == nil {
				errs[i] = errdefs.NotFound("node %s not found", c.nodeID)
				continue
			}
			cur[c.nodeID], n = old, proto.Clone(old).(*api.Node)
			next[c.nodeID] = n
		}
		c.change(n)
	}
	var changed []*api.Node
	for id, n := range next {
		if !proto.Equal(n, cur[id]) {
			changed = append(changed, n)
		}
	}
	return changed
}
