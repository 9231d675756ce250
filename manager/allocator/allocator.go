package allocator

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/batch"
	"github.com/shoal-project/shoal/manager/reconcile"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// DefaultQuarantine is how long a freed address rests before reuse.
const DefaultQuarantine = 5 * time.Second

// NetworkKeySize is the length of Cluster.network_key.
const NetworkKeySize = 32

// Config configures an Allocator. Zero values take the defaults.
type Config struct {
	Store *raftstore.Store // required
	Clock clockwork.Clock  // default: the real clock
	Log   *slog.Logger     // default: slog.Default()
	// Quarantine is how long a freed address is not handed out again
	// (default DefaultQuarantine; negative: no quarantine).
	Quarantine time.Duration
}

func (c *Config) validate() error {
	if c.Store == nil {
		return errdefs.InvalidArgument("allocator: Config.Store is required")
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Quarantine == 0 {
		c.Quarantine = DefaultQuarantine
	}
	if c.Quarantine < 0 {
		c.Quarantine = 0
	}
	return nil
}

// Allocator is the allocation loop.
type Allocator struct {
	cfg   Config
	store *raftstore.Store
	clock clockwork.Clock
	log   *slog.Logger
	st    *state
	// rebuild: a write failed, the mirror may hold reservations the store
	// never took; rebuild it before the next pass.
	rebuild bool
}

// New returns an allocator over the store with the default quarantine.
func New(store *raftstore.Store, clock clockwork.Clock, log *slog.Logger) *Allocator {
	a, err := NewWithConfig(Config{Store: store, Clock: clock, Log: log})
	if err != nil {
		panic(err) // only a nil store
	}
	return a
}

// NewWithConfig returns an allocator configured by cfg.
func NewWithConfig(cfg Config) (*Allocator, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Log.With("component", "allocator")
	return &Allocator{cfg: cfg, store: cfg.Store, clock: cfg.Clock, log: log, st: newState(log)}, nil
}

// Run allocates until ctx ends, on a reconcile.Driver: a batch whose
// write fails is retried with backoff, after the store settles. It first
// syncs the store (at most 10 s).
func (a *Allocator) Run(ctx context.Context) error {
	// Entries of an earlier leader's term may still be committing: let
	// them land before the first snapshot, so no address they hold looks
	// free. Bounded; without it the events still catch up.
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := a.store.Sync(sctx); err != nil && ctx.Err() == nil {
		a.log.Warn("could not sync the store before allocating; going on", "err", err)
	}
	cancel()
	return reconcile.New(reconcile.Config{
		Name:          "allocator",
		Store:         a.store,
		Kinds:         []string{raftstore.KindTask, raftstore.KindNetwork, raftstore.KindNode, raftstore.KindService, raftstore.KindCluster},
		Clock:         a.clock,
		Log:           a.log,
		SettleUnknown: true,
		Filter:        relevant,
	}, handler{a}).Run(ctx)
}

// relevant reports whether a store event may change what the allocator
// holds or must do: every event except a task update that leaves the
// task's node, liveness and network attachments as they were and does not
// leave it NEW. Those are most task updates (the agents' status reports,
// most placements of tasks without networks), and at 1,000,000 tasks they
// filled the allocator's watch buffer until it was cut off and reread
// every task, several times in one create.
func relevant(ev raftstore.Event) bool {
	if ev.Action != raftstore.ActionUpdate {
		return true
	}
	t, ok := ev.Object.(*api.Task)
	old, wasTask := ev.Old.(*api.Task)
	if !ok || !wasTask {
		return true
	}
	return t.GetStatus().GetState() == api.TaskState_NEW || t.GetNodeId() != old.GetNodeId() ||
		liveTask(t) != liveTask(old) || !sameAttachments(t.GetNetworks(), old.GetNetworks())
}

// sameAttachments: the same network attachments (shared when a write left
// them alone, so the pointer test settles nearly every case).
func sameAttachments(a, b []*api.NetworkAttachment) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// handler adapts the allocator to the reconcile driver.
type handler struct{ a *Allocator }

func (h handler) Snapshot(tx raftstore.ReadTx, mark func(string)) {
	a := h.a
	a.st.rebuild(tx, a.clock.Now(), mark)
	a.st.waiting = map[string]map[string]bool{}
	a.rebuild = false
	for _, t := range tx.Tasks() {
		if t.GetStatus().GetState() == api.TaskState_NEW {
			mark(preTask + t.Id)
		}
	}
	for _, svc := range tx.Services() {
		mark(preService + svc.Id)
	}
	for _, n := range tx.Nodes() {
		if len(n.GetAttachments()) > 0 {
			mark(preNode + n.Id)
		}
	}
	mark(keyCluster)
}

func (h handler) Event(ev raftstore.Event, mark func(string)) {
	a := h.a
	now := a.clock.Now()
	switch o := ev.Object.(type) {
	case *api.Network:
		if ev.Action == raftstore.ActionDelete {
			a.st.removeNetwork(o.Id, mark)
		} else {
			a.st.addNetwork(o, mark)
		}
		return
	case *api.Cluster:
		if len(o.GetNetworkKey()) != NetworkKeySize {
			mark(keyCluster)
		}
		return
	}
	if ev.Action == raftstore.ActionDelete {
		key, _ := holdingOf(ev.Object)
		if key != "" {
			a.st.set(key, nil, now, mark)
		}
		a.st.forget(ev.Object, mark)
		if t, ok := ev.Object.(*api.Task); ok && t.GetNodeId() != "" {
			mark(preNode + t.GetNodeId())
		}
		return
	}
	a.st.observe(ev.Object, now, mark)
	switch o := ev.Object.(type) {
	case *api.Task:
		if o.GetStatus().GetState() == api.TaskState_NEW {
			mark(preTask + o.Id)
		}
	case *api.Service:
		mark(preService + o.Id)
	case *api.Node:
		// Cheap when nothing changed; catches a node created after
		// its tasks were placed.
		mark(preNode + o.Id)
	}
}

func (h handler) Reconcile(ctx context.Context, keys []string, out *reconcile.Outcome) {
	a := h.a
	if a.rebuild {
		a.store.View(func(tx raftstore.ReadTx) { a.st.rebuild(tx, a.clock.Now(), func(string) {}) })
		a.rebuild = false
	}
	// Cluster first, then services (their VIPs go into tasks' endpoints),
	// then tasks, then nodes.
	order := func(k string) int {
		switch {
		case k == keyCluster:
			return 0
		case strings.HasPrefix(k, preService):
			return 1
		case strings.HasPrefix(k, preTask):
			return 2
		}
		return 3
	}
	sort.SliceStable(keys, func(i, j int) bool { return order(keys[i]) < order(keys[j]) })
	sizes := map[string]int{}
	a.store.View(func(tx raftstore.ReadTx) {
		for _, k := range keys {
			if o := object(tx, k); o != nil {
				sizes[k] = proto.Size(o)
			}
		}
	})
	// A key writes its object, a task's attachments (a few hundred
	// bytes each) and at most once per transaction its service's VIPs.
	cost := func(k string) int {
		if strings.HasPrefix(k, preService) {
			return 2*sizes[k] + 512
		}
		return sizes[k] + 1024
	}
	for _, part := range batch.Cut(keys, cost, raftstore.BatchItems, raftstore.BatchBytes) {
		pass := &passState{now: a.clock.Now(), out: out}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := a.store.Update(wctx, func(tx *raftstore.Tx) error {
			pass.reset()
			for _, k := range part {
				if err := a.reconcileKey(tx, k, pass); err != nil {
					return err
				}
			}
			return nil
		})
		cancel()
		if err != nil {
			a.rebuild = true
			for _, k := range part {
				out.Fail(k, err)
			}
			continue
		}
		for k, at := range pass.wake {
			out.WakeAt(k, at)
		}
	}
}

// passState is what one transaction's keys report.
type passState struct {
	now  time.Time
	out  *reconcile.Outcome
	wake map[string]time.Time
}

func (p *passState) reset() { p.wake = map[string]time.Time{} }

func object(tx raftstore.ReadTx, key string) raftstore.Object {
	switch {
	case strings.HasPrefix(key, preTask):
		if t := tx.Task(key[2:]); t != nil {
			return t
		}
	case strings.HasPrefix(key, preService):
		if s := tx.Service(key[2:]); s != nil {
			return s
		}
	case strings.HasPrefix(key, preNode):
		if n := tx.Node(key[2:]); n != nil {
			return n
		}
	}
	return nil
}

func (a *Allocator) reconcileKey(tx *raftstore.Tx, key string, p *passState) error {
	switch {
	case key == keyCluster:
		return a.ensureNetworkKey(tx)
	case strings.HasPrefix(key, preService):
		if svc := tx.Service(key[2:]); svc != nil {
			_, err := a.ensureVIPs(tx, svc, p)
			return err
		}
	case strings.HasPrefix(key, preTask):
		if t := tx.Task(key[2:]); t != nil && t.GetStatus().GetState() == api.TaskState_NEW {
			return a.allocateTask(tx, t, p)
		}
	case strings.HasPrefix(key, preNode):
		if n := tx.Node(key[2:]); n != nil {
			return a.nodeAttachments(tx, n, p)
		}
	case strings.HasPrefix(key, preNetwork):
		return a.finishRemoval(tx, key[2:])
	}
	return nil
}

// finishRemoval deletes a network pending delete once no task holds an
// address on it: the mirror says when to look, the store decides.
func (a *Allocator) finishRemoval(tx *raftstore.Tx, id string) error {
	n := tx.Network(id)
	if n == nil || !n.GetPendingDelete() || a.st.taskHolds(id) {
		return nil
	}
	for _, t := range tx.Tasks() {
		if !liveTask(t) {
			continue
		}
		for _, at := range t.GetNetworks() {
			if at.GetNetworkId() == id {
				return nil // the mirror lags: this task's stop marks the key again
			}
		}
	}
	return tx.Delete(n)
}

// ensureNetworkKey gives an older cluster its gossip key.
func (a *Allocator) ensureNetworkKey(tx *raftstore.Tx) error {
	cs := tx.Clusters()
	if len(cs) == 0 || len(cs[0].GetNetworkKey()) == NetworkKeySize {
		return nil
	}
	next := proto.Clone(cs[0]).(*api.Cluster)
	next.NetworkKey = make([]byte, NetworkKeySize)
	if _, err := rand.Read(next.NetworkKey); err != nil {
		return err
	}
	return tx.Update(next)
}

// newMAC returns a random locally administered unicast MAC no holder has.
func (a *Allocator) newMAC(holder string) (string, error) {
	for range 16 {
		var b [6]byte
		if _, err := rand.Read(b[1:]); err != nil {
			return "", err
		}
		b[0] = 0x02
		mac := fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5])
		if _, taken := a.st.macs[mac]; !taken {
			a.st.macs[mac] = holder
			return mac, nil
		}
	}
	return "", errdefs.Internal("could not draw a unique MAC address")
}
