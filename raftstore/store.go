package raftstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// MaxTransactionBytes caps one transaction's encoded size, well under the
// 4 MiB gRPC message cap so that a raft append carrying it always fits.
const MaxTransactionBytes = 1536 << 10

// Proposer replicates an encoded command and returns the error its
// application produced (nil when it applied cleanly). Node implements it.
type Proposer interface {
	Propose(ctx context.Context, cmd Command, payload []byte) error
}

// Store is the typed object store: the state machine raft replicates. Reads
// are served from immutable snapshots of copy-on-write B-trees (tables.go)
// without locks; writes are
// built by Update, replicated by the Proposer and applied by Apply, which
// only the raft apply loop calls.
//
// Store is safe for concurrent use. Apply and Restore must be called from
// one goroutine at a time (the raft apply loop).
type Store struct {
	clock clockwork.Clock

	// Two locks, taken in this order: watchMu, then mu. mu guards only the
	// snapshot pointer and version, and is held for a swap or a read of
	// them; watchMu orders watcher registration against event broadcast.
	// A batch's broadcast (tens of thousands of events to every watcher in
	// a 1M create) runs under watchMu alone: under mu it held off every
	// View for up to 0.4 s, and with them the leader's heartbeats.
	watchMu  sync.Mutex
	watchers map[*Watcher]struct{}            // watchers without a NodeID (watchMu)
	byNode   map[string]map[*Watcher]struct{} // watchers with a NodeID, by it (watchMu)
	mu       sync.RWMutex
	db       *db    // the published snapshot: never modified (tables.go)
	version  uint64 // raft index of the last applied transaction

	proposer Proposer

	// applyFault, set by tests, runs before each action is applied with
	// the transaction's index (a panic in it stands for a bug).
	applyFault func(index uint64)
}

// NewStore returns an empty store. SetProposer must be called before Update.
func NewStore(clock clockwork.Clock) *Store {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	return &Store{clock: clock, db: newDB(), watchers: map[*Watcher]struct{}{}}
}

// SetProposer wires the store to the replication layer.
func (s *Store) SetProposer(p Proposer) { s.proposer = p }

// View runs fn on a consistent snapshot of the store.
func (s *Store) View(fn func(ReadTx)) {
	s.mu.RLock()
	d := s.db
	s.mu.RUnlock()
	fn(ReadTx{db: d})
}

// Version is the raft index of the last transaction applied to the store.
func (s *Store) Version() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.version
}

// Update runs fn to build a transaction and replicates it. fn must be quick
// and do no I/O (it runs on a private snapshot of the store and holds no
// lock, but a slow fn makes conflicts likely). fn
// may run against a state that is older than the one the transaction is
// finally applied to; the versions of updated objects guard against that,
// and a conflict comes back as an errdefs.ErrConflict error (read again and
// retry). An fn error aborts without proposing anything.
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	actions, err := s.build(fn)
	if err != nil || len(actions) == 0 {
		return err
	}
	return s.commit(ctx, actions)
}

// Sync returns once every write proposed through this store before the
// call has been applied or dropped for good (it replicates a no-op behind
// them). After a write failed without a verdict — its deadline passed, or
// leadership changed — reading the store after Sync tells whether it took
// effect. Only the leader can Sync.
func (s *Store) Sync(ctx context.Context) error {
	if s.proposer == nil {
		return errdefs.ErrNotManager
	}
	return s.proposer.Propose(ctx, CmdNoop, nil)
}

// IsVerdict reports whether a write's error is the store's own verdict on
// it (a conflict, a duplicate, a missing object, an invalid or too large
// transaction): such a write was certainly not applied. Any other error
// (a deadline, a lost leadership, a stopped member) leaves its outcome
// unknown until Sync.
func IsVerdict(err error) bool {
	return errdefs.IsConflict(err) || errdefs.IsAlreadyExists(err) || errdefs.IsNotFound(err) || errdefs.IsInvalidArgument(err)
}

func (s *Store) build(fn func(*Tx) error) ([]*api.StoreAction, error) {
	s.mu.RLock()
	d := s.db
	s.mu.RUnlock()
	// Writes go to a private fork of the snapshot: fn holds no lock of the
	// store (Apply and other Updates go on), and its writes stay private.
	tx := newTx(d)
	if err := fn(tx); err != nil {
		return nil, err
	}
	return tx.Actions(), nil
}

func (s *Store) commit(ctx context.Context, actions []*api.StoreAction) error {
	if s.proposer == nil {
		return errdefs.ErrNotManager
	}
	// Deterministic, each shared spec encoded once (txencode.go): the
	// copies of one spec encode alike, so Apply on every replica finds
	// them equal by their bytes (txdecode.go).
	data, err := encodeTransaction(actions, s.clock.Now().UnixNano())
	if err != nil {
		return errdefs.Internal("encode transaction: %v", err)
	}
	if len(data) > MaxTransactionBytes {
		return errdefs.InvalidArgument("transaction of %d bytes exceeds the %d-byte limit; split it", len(data), MaxTransactionBytes)
	}
	if z, ok := deflate(data); ok {
		return s.proposer.Propose(ctx, CmdTransactionDeflated, z)
	}
	return s.proposer.Propose(ctx, CmdTransaction, data)
}

// Apply applies one committed transaction at raft index `index`. It is
// deterministic: every replica gets the same result. A transaction that
// fails any check (a stale version, a duplicate, a missing object) changes
// nothing, and the error is returned to the proposer.
//
// A transaction that cannot be applied at all — its bytes do not decode, or
// applying it panics (a bug) — is a poison entry: every replica meets the
// same bytes, so each one refuses it in the same way, changes nothing,
// reports the error to the proposer and goes on. It never stops the apply
// loop, so a manager never crashes on it again after a restart.
func (s *Store) Apply(index uint64, payload []byte) error {
	errs := s.ApplyBatch([]TxEntry{{Index: index, Payload: payload}})
	return errs[0]
}

// TxEntry is one committed transaction for ApplyBatch.
type TxEntry struct {
	Index   uint64
	Payload []byte
}

// ApplyBatch applies consecutive committed transactions (in index order)
// as Apply would one by one, and returns each one's verdict. They are
// applied to one fork of the store and published together, so a tree path
// that several of them write is copied once, not once per transaction (at
// 256 proposers, raft commits about 30 small entries at a time). A
// transaction that fails a check is undone before the next one runs;
// should one panic, the fork is dropped and the batch applied again one
// transaction per fork, the panicking one refused as a poison entry.
// Readers never see part of a batch, and watchers get each transaction's
// events with its own index, as with Apply.
func (s *Store) ApplyBatch(entries []TxEntry) []error {
	errs := make([]error, len(entries))
	if len(entries) == 0 {
		return errs
	}
	// Only this goroutine writes s.db (Apply and Restore are never called
	// at once), so it is read without the lock.
	w := s.db.fork()
	events := make([][]Event, len(entries))
	for i, e := range entries {
		evs, broken, err := applyActions(w, e.Index, e.Payload, s.applyFault)
		if broken {
			return s.applyOneByOne(entries)
		}
		events[i], errs[i] = evs, err
	}
	s.publish(w, entries, events)
	return errs
}

// applyOneByOne applies each entry to a fork of its own, the way to refuse
// a poison entry without losing the batch's others.
func (s *Store) applyOneByOne(entries []TxEntry) []error {
	errs := make([]error, len(entries))
	for i, e := range entries {
		w := s.db.fork()
		evs, broken, err := applyActions(w, e.Index, e.Payload, s.applyFault)
		if broken || err != nil {
			s.MarkApplied(e.Index)
			errs[i] = err
			continue
		}
		s.publish(w, entries[i:i+1], [][]Event{evs})
	}
	return errs
}

// publish makes w the store's content at the last entry's index and tells
// the watchers each entry's events. Readers see the new content as soon as
// it is swapped in, before the watchers get its events (as they may see it
// before a watcher has read them); a watch started meanwhile waits for the
// broadcast, so it misses nothing and sees nothing twice.
func (s *Store) publish(w *db, entries []TxEntry, events [][]Event) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	s.mu.Lock()
	s.db = w // published: never written again (the next Apply forks it)
	if last := entries[len(entries)-1].Index; last > s.version {
		s.version = last
	}
	s.mu.Unlock()
	for i, evs := range events {
		if len(evs) > 0 {
			s.broadcast(evs, entries[i].Index)
		}
	}
}

// applyActions applies a transaction's actions to w, which its caller
// forked and has not published. A transaction that fails a check is undone
// (w is as before) and its error returned. broken reports a panic (a bug,
// or bytes that do not decode where they must): w may then be half
// written and must be dropped.
func applyActions(w *db, index uint64, payload []byte, fault func(uint64)) (events []Event, broken bool, err error) {
	undecodable := func(err error) error {
		return errdefs.Internal("raft entry %d does not decode as a transaction (%v); it was skipped on every manager and changed nothing", index, err)
	}
	actions, unixNano, err := splitTransaction(payload)
	if err != nil {
		return nil, false, undecodable(err)
	}
	defer func() {
		if r := recover(); r != nil {
			events = nil
			err = errdefs.Internal("applying raft entry %d failed (%v); it was skipped on every manager and changed nothing", index, r)
			broken = true
			return
		}
		if err != nil {
			undo(w, events)
			events = nil
		}
	}()
	ts := timestamppb.New(time.Unix(0, unixNano))
	events = make([]Event, 0, len(actions))
	sh := newSharer()
	var read taskRead
	cands := func(kind api.StoreAction_Kind, id, serviceID string) (prev *api.Task, svc *api.Service) {
		switch kind {
		case api.StoreAction_CREATE:
			if o := w.table(KindService).get(serviceID); o != nil && serviceID != "" {
				svc = o.(*api.Service)
			}
		case api.StoreAction_UPDATE:
			o := w.table(KindTask).get(id)
			if o != nil {
				prev = o.(*api.Task)
			}
			read = taskRead{id: id, obj: o, done: true}
		}
		return prev, svc
	}
	for _, b := range actions {
		read = taskRead{}
		a, err := sh.decodeAction(b, cands)
		if err != nil {
			return events, false, undecodable(err)
		}
		if fault != nil {
			fault(index)
		}
		ev, err := applyAction(w, sh, a, index, ts, read)
		if err != nil {
			return events, false, err
		}
		events = append(events, ev)
	}
	return events, false, nil
}

// undo reverts the writes that events record, last first: each action
// writes only once all its checks passed, so its event says everything it
// changed.
func undo(w *db, events []Event) {
	for i := len(events) - 1; i >= 0; i-- {
		ev := events[i]
		t := w.writable(ev.Kind)
		switch ev.Action {
		case ActionCreate:
			t.delete(ev.Object.GetId())
		case ActionUpdate, ActionDelete:
			t.put(ev.Old)
		}
	}
}

// MarkApplied records that index was applied without a store transaction
// (a no-op or a membership change), keeping Version current.
func (s *Store) MarkApplied(index uint64) {
	s.mu.Lock()
	if index > s.version {
		s.version = index
	}
	s.mu.Unlock()
}

// taskRead is a task the decode of the current action already read from
// the same state (its previous version, for sharing): applyAction uses it
// instead of searching the by-ID tree again. obj is nil when there was none.
type taskRead struct {
	id   string
	obj  Object
	done bool
}

func applyAction(w *db, sh *sharer, a *api.StoreAction, index uint64, ts *timestamppb.Timestamp, read taskRead) (Event, error) {
	o := Unwrap(a.GetObject())
	if o == nil {
		return Event{}, errdefs.InvalidArgument("store action without an object")
	}
	kind := KindOf(o)
	var old Object
	if read.done && kind == KindTask && read.id == o.GetId() {
		old = read.obj
	} else {
		old = w.table(kind).get(o.GetId())
	}
	checkName := func() error {
		if name, ok := nameOf(o); ok && name != "" {
			if other := w.table(kind).named(name); other != nil && other.GetId() != o.GetId() {
				return errdefs.AlreadyExists("%s %s already exists", kind, name)
			}
		}
		return nil
	}
	switch a.GetKind() {
	case api.StoreAction_CREATE:
		if o.GetId() == "" {
			return Event{}, errdefs.InvalidArgument("%s has no ID", kind)
		}
		if old != nil {
			return Event{}, errdefs.AlreadyExists("%s %s already exists", kind, o.GetId())
		}
		if err := checkName(); err != nil {
			return Event{}, err
		}
		if t, ok := o.(*api.Task); ok {
			// A task is created for a service that exists: a create decided
			// before the service's removal committed must not leave orphans.
			if t.ServiceId != "" {
				svc := w.table(KindService).get(t.ServiceId)
				if svc == nil {
					return Event{}, errdefs.NotFound("service %s was removed; task %s not created", t.ServiceId, t.Id)
				}
				sh.shareTask(t, nil, svc.(*api.Service))
			}
			shareNodeID(w, t, nil)
		}
		setMeta(o, &api.Meta{Version: index, CreatedAt: ts, UpdatedAt: ts})
		w.writable(kind).put(o)
		return Event{Action: ActionCreate, Kind: kind, Object: o}, nil
	case api.StoreAction_UPDATE:
		if old == nil {
			return Event{}, errdefs.NotFound("%s %s not found", kind, o.GetId())
		}
		if ev := a.GetExpectedVersion(); ev != 0 && old.GetMeta().GetVersion() != ev {
			return Event{}, errdefs.Conflict("%s %s was changed by someone else (version %d, write based on %d); read it again and retry",
				kind, o.GetId(), old.GetMeta().GetVersion(), ev)
		}
		if err := checkName(); err != nil {
			return Event{}, err
		}
		if t, ok := o.(*api.Task); ok {
			sh.shareTask(t, old.(*api.Task), nil)
			shareNodeID(w, t, old.(*api.Task))
		}
		setMeta(o, &api.Meta{Version: index, CreatedAt: old.GetMeta().GetCreatedAt(), UpdatedAt: ts})
		w.writable(kind).put(o)
		return Event{Action: ActionUpdate, Kind: kind, Object: o, Old: old}, nil
	case api.StoreAction_DELETE:
		if old == nil {
			return Event{}, errdefs.NotFound("%s %s not found", kind, o.GetId())
		}
		if ev := a.GetExpectedVersion(); ev != 0 && old.GetMeta().GetVersion() != ev {
			return Event{}, errdefs.Conflict("%s %s was changed by someone else; read it again and retry", kind, o.GetId())
		}
		w.writable(kind).delete(old.GetId())
		return Event{Action: ActionDelete, Kind: kind, Object: old, Old: old}, nil
	}
	return Event{}, errdefs.InvalidArgument("unknown store action %v", a.GetKind())
}

// Objects returns every object in a fixed order (kind, then ID) and the
// version they are current at. The objects are shared: do not modify them.
func (s *Store) Objects() ([]Object, uint64) {
	s.mu.RLock()
	d := s.db
	version := s.version
	s.mu.RUnlock()
	n := 0
	for _, t := range d.tables {
		n += t.byID.Len()
	}
	out := make([]Object, 0, n)
	for _, k := range Kinds {
		d.table(k).ascend(func(o Object) bool {
			out = append(out, o)
			return true
		})
	}
	return out, version
}

// Restore replaces the whole store with objects (from a snapshot) at
// version index. Watchers are cut off with ErrWatchReset: what they had seen
// no longer leads to the new state by events, so they must read again.
func (s *Store) Restore(index uint64, objs []Object) error {
	d := newDB()
	shareRestored(objs)
	for _, o := range objs {
		if o.GetId() == "" {
			return fmt.Errorf("restore %s: an object without an ID", KindOf(o))
		}
		d.writable(KindOf(o)).put(o)
	}
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	s.mu.Lock()
	s.db = d
	s.version = index
	s.mu.Unlock()
	s.endWatches(ErrWatchReset)
	return nil
}

// Hash is a digest of the whole store's content, equal on replicas that
// applied the same log.
func (s *Store) Hash() string {
	objs, _ := s.Objects()
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	for _, o := range objs {
		b, err := opts.Marshal(o)
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(h, "%s/%s/%d:", KindOf(o), o.GetId(), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}
