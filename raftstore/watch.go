package raftstore

import (
	"errors"
	"sync"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// Action is what happened to an object.
type Action int

// Actions of events.
const (
	ActionCreate Action = 1
	ActionUpdate Action = 2
	ActionDelete Action = 4
	// ActionCommit closes the events of one transaction; Object is nil and
	// Version is the transaction's raft index.
	ActionCommit Action = 8
)

func (a Action) String() string {
	switch a {
	case ActionCreate:
		return "create"
	case ActionUpdate:
		return "update"
	case ActionDelete:
		return "delete"
	case ActionCommit:
		return "commit"
	}
	return "unknown"
}

// Event is one change to the store. Object and Old are shared with the
// store and must not be modified.
type Event struct {
	Action  Action
	Kind    string
	Object  Object // the new object; for a delete, the deleted one
	Old     Object // for updates and deletes
	Version uint64 // raft index of the transaction
}

var (
	// ErrSlowWatcher ends a watch whose consumer fell behind by more than
	// its buffer: the store never buffers without bound for a consumer.
	ErrSlowWatcher = errdefs.New(errdefs.ErrResourceExhausted, "watcher fell too far behind the store and was cut off; read the state again and re-watch")
	// ErrWatchReset ends a watch when the store was replaced by a snapshot.
	ErrWatchReset = errdefs.New(errdefs.ErrUnavailable, "the store was reloaded from a snapshot; read the state again and re-watch")
	// ErrWatchClosed ends a watch its owner closed.
	ErrWatchClosed = errors.New("watch closed")
)

// DefaultWatchBuffer is the events a watcher may have pending.
const DefaultWatchBuffer = 4096

// watchChanCap is the capacity of a watcher's channel. Pending events
// beyond it wait in a queue that grows on demand, up to the watcher's
// Buffer, while a goroutine moves them into the channel: an idle watcher
// holds 64 events' room (4 KiB), not its whole Buffer. 8 for NodeID
// watchers (one per node on the leader: the dispatcher's) made an idle one
// 1,436 B instead of 5,788 (BenchmarkNodeWatcherHeap), 43 MB less of the
// leader's heap at 10,000 nodes, but sends more of a lagging consumer's
// events through the queue and a pump goroutine, during the broadcast;
// two 1M creates with it lost nodes to missed heartbeats on an overloaded
// day while a control run without it did not (BENCHMARKS.md, session 16).
// It is not used until an A/B at 1M on a quiet machine says it is safe.
const watchChanCap = 64

// WatchOptions select a watcher's events.
type WatchOptions struct {
	// Kinds restricts events to these kinds; empty means all.
	Kinds []string
	// Filter, when set, must return true for an event to be delivered. It
	// runs on the apply loop: keep it cheap.
	Filter func(Event) bool
	// NodeID, when set, restricts the watch to events about that node: a
	// task event whose task (new or old: Object or Old) has NodeId NodeID,
	// and a node event whose node has ID NodeID. Events of other kinds are
	// not delivered. Kinds and Filter still apply on top. The store indexes
	// such watchers by node, so an event costs nothing for the watchers of
	// other nodes: at thousands of nodes, prefer it to a Filter on the node.
	NodeID string
	// Commits asks for an ActionCommit event after each transaction that
	// delivered at least one event.
	Commits bool
	// Buffer is the number of pending events before the watcher is cut off.
	// Default DefaultWatchBuffer. The room is allocated as events wait, not
	// up front.
	Buffer int
}

// Watcher receives store events on C until it is closed; then Err says why.
// C is closed when the watch ends. Events still pending when the watch ends
// may be dropped, except those already in C (its capacity: 64 events):
// after an error, read the state again.
type Watcher struct {
	C <-chan Event

	c     chan Event
	opts  WatchOptions
	kinds map[string]bool
	store *Store

	once sync.Once
	stop chan struct{} // closed when the watch ends

	mu      sync.Mutex
	err     error
	ended   bool
	queue   []Event // pending events that did not fit in c, oldest first, from head on
	head    int     // queue[:head] were sent (and cleared)
	pumping bool    // a pump goroutine owns sending to c (and closing it)
}

// keptQueueRoom is the most room (in events, 1 MiB) a watcher keeps for
// its queue between bursts, so that a consumer behind by a few big
// transactions' events again and again (a leader's loops while tasks are
// created: 3,000-4,000 events) does not grow a new queue each time; a
// queue that grew larger is released when it empties. Only watchers that
// had such bursts keep any room.
const keptQueueRoom = 16 << 10

// Err returns why the watch ended, nil while it runs.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close ends the watch.
func (w *Watcher) Close() {
	w.store.watchMu.Lock()
	defer w.store.watchMu.Unlock()
	w.store.closeWatcher(w, ErrWatchClosed)
}

// Watch starts a watch on events after the current version.
func (s *Store) Watch(opts WatchOptions) *Watcher {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	return s.addWatcher(opts)
}

// ViewAndWatch runs fn on a snapshot of the store and starts a watch whose
// first event is the first change after that snapshot: nothing is missed
// and nothing is seen twice. The snapshot is taken and the watch started
// together under the store's watch lock; fn runs after it is released (a
// read transaction is an immutable snapshot), so a long fn does not hold
// off the apply loop, but events arriving meanwhile wait in the watcher's
// Buffer and the watch is cut off with ErrSlowWatcher if it fills. If fn
// panics, the watch is closed and the panic goes on.
func (s *Store) ViewAndWatch(opts WatchOptions, fn func(ReadTx)) *Watcher {
	s.watchMu.Lock()
	s.mu.RLock()
	d := s.db
	s.mu.RUnlock()
	w := s.addWatcher(opts)
	s.watchMu.Unlock()
	ok := false
	defer func() {
		if !ok {
			w.Close()
		}
	}()
	fn(ReadTx{db: d})
	ok = true
	return w
}

func (s *Store) addWatcher(opts WatchOptions) *Watcher {
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultWatchBuffer
	}
	c := make(chan Event, min(opts.Buffer, watchChanCap))
	w := &Watcher{C: c, c: c, opts: opts, store: s, stop: make(chan struct{})}
	if len(opts.Kinds) > 0 {
		w.kinds = map[string]bool{}
		for _, k := range opts.Kinds {
			w.kinds[k] = true
		}
	}
	if opts.NodeID == "" {
		s.watchers[w] = struct{}{}
		return w
	}
	if s.byNode == nil {
		s.byNode = map[string]map[*Watcher]struct{}{}
	}
	set := s.byNode[opts.NodeID]
	if set == nil {
		set = map[*Watcher]struct{}{}
		s.byNode[opts.NodeID] = set
	}
	set[w] = struct{}{}
	return w
}

// endWatches ends every watch with why; s.watchMu must be held.
func (s *Store) endWatches(why error) {
	for w := range s.watchers {
		s.closeWatcher(w, why)
	}
	for _, set := range s.byNode {
		for w := range set {
			s.closeWatcher(w, why)
		}
	}
}

// closeWatcher ends w; s.watchMu must be held.
func (s *Store) closeWatcher(w *Watcher, why error) {
	w.once.Do(func() {
		if n := w.opts.NodeID; n != "" {
			delete(s.byNode[n], w)
			if len(s.byNode[n]) == 0 {
				delete(s.byNode, n)
			}
		} else {
			delete(s.watchers, w)
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		w.err = why
		w.ended = true
		close(w.stop)
		if !w.pumping {
			w.queue, w.head = nil, 0
			close(w.c)
		}
	})
}

// broadcast delivers one transaction's events; s.watchMu must be held. A
// watcher whose buffer is full is cut off at once and gets nothing more of
// this transaction (its channel is closed). Watchers with a NodeID get
// only the events about their node, found through s.byNode: an event costs
// the watchers that can match it, not every watcher.
func (s *Store) broadcast(events []Event, version uint64) {
	for w := range s.watchers {
		s.deliverSafely(w, events, version)
	}
	if len(s.byNode) == 0 {
		return
	}
	var perNode map[string][]Event
	add := func(node string, ev Event) {
		if node == "" || s.byNode[node] == nil {
			return
		}
		if perNode == nil {
			perNode = map[string][]Event{}
		}
		perNode[node] = append(perNode[node], ev)
	}
	for _, ev := range events {
		cur, old := eventNodes(ev)
		add(cur, ev)
		if old != cur {
			add(old, ev)
		}
	}
	for node, evs := range perNode {
		for w := range s.byNode[node] {
			s.deliverSafely(w, evs, version)
		}
	}
}

// eventNodes are the nodes an event is about (see WatchOptions.NodeID):
// a task's node before and after the change, a node's own ID.
func eventNodes(ev Event) (cur, old string) {
	switch ev.Kind {
	case KindTask:
		if t, ok := ev.Object.(*api.Task); ok {
			cur = t.GetNodeId()
		}
		if t, ok := ev.Old.(*api.Task); ok {
			old = t.GetNodeId()
		}
	case KindNode:
		if ev.Object != nil {
			cur = ev.Object.GetId()
		}
	}
	return cur, old
}

// deliverSafely is deliver, cutting off a watcher whose Filter panics
// instead of letting the panic stop the apply loop.
func (s *Store) deliverSafely(w *Watcher, events []Event, version uint64) {
	defer func() {
		if r := recover(); r != nil {
			s.closeWatcher(w, errdefs.Internal("the watch's filter failed (%v); the watch was ended", r))
		}
	}()
	s.deliver(w, events, version)
}

// deliver sends one transaction's events to w, then its commit event when
// it asked for one; it cuts w off when its buffer is full.
func (s *Store) deliver(w *Watcher, events []Event, version uint64) {
	sent := false
	for _, ev := range events {
		if w.kinds != nil && !w.kinds[ev.Kind] {
			continue
		}
		ev.Version = version
		if w.opts.Filter != nil && !w.opts.Filter(ev) {
			continue
		}
		if !w.send(ev) {
			s.closeWatcher(w, ErrSlowWatcher)
			return
		}
		sent = true
	}
	if sent && w.opts.Commits && !w.send(Event{Action: ActionCommit, Version: version}) {
		s.closeWatcher(w, ErrSlowWatcher)
	}
}

// send queues ev for the consumer; false when Buffer events are pending.
// Only the apply loop calls it (s.watchMu held).
func (w *Watcher) send(ev Event) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.pumping {
		select {
		case w.c <- ev:
			return true
		default:
		}
	}
	if len(w.c)+len(w.queue)-w.head >= w.opts.Buffer {
		return false
	}
	if len(w.queue) == cap(w.queue) && w.head > len(w.queue)/2 {
		// Most of the room is sent: move the rest to the front rather
		// than grow.
		n := copy(w.queue, w.queue[w.head:])
		clear(w.queue[n:])
		w.queue, w.head = w.queue[:n], 0
	}
	w.queue = append(w.queue, ev)
	if !w.pumping {
		w.pumping = true
		go w.pump()
	}
	return true
}

// pump moves the queue into c in order until it is empty or the watch
// ends; while it runs, it alone sends to c, and it closes c if the watch
// ended.
func (w *Watcher) pump() {
	for {
		w.mu.Lock()
		if w.ended || w.head == len(w.queue) {
			w.pumping = false
			if w.ended || cap(w.queue) > keptQueueRoom {
				w.queue = nil
			} else {
				w.queue = w.queue[:0]
			}
			w.head = 0
			if w.ended {
				close(w.c)
			}
			w.mu.Unlock()
			return
		}
		ev := w.queue[w.head]
		w.mu.Unlock()
		select {
		case w.c <- ev:
			w.mu.Lock()
			w.queue[w.head] = Event{}
			w.head++
			w.mu.Unlock()
		case <-w.stop:
		}
	}
}
