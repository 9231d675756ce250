package raftstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
)

// testCluster is an in-process raft cluster over a MemNetwork.
type testCluster struct {
	t       *testing.T
	net     *MemNetwork
	cfg     func(*Config)
	members []*testMember
}

type testMember struct {
	idx     int
	addr    string
	nodeID  string
	path    string
	storage *DiskStorage
	store   *Store
	node    *Node
	cancel  context.CancelFunc
	errc    chan error
}

func newTestCluster(t *testing.T, size int, tweak func(*Config)) *testCluster {
	t.Helper()
	return newTestClusterIn(t, size, tweak, nil)
}

// newTestClusterIn is newTestCluster with member i's raft log in dirOf(i)
// (nil or "": in a temporary directory).
func newTestClusterIn(t *testing.T, size int, tweak func(*Config), dirOf func(i int) string) *testCluster {
	t.Helper()
	c := &testCluster{t: t, net: NewMemNetwork(), cfg: tweak}
	dir := t.TempDir()
	for i := 0; i < size; i++ {
		path := filepath.Join(dir, fmt.Sprintf("m%d", i), "raft.db")
		if dirOf != nil && dirOf(i) != "" {
			path = filepath.Join(dirOf(i), "raft.db")
		}
		c.members = append(c.members, &testMember{
			idx:    i,
			addr:   fmt.Sprintf("m%d:4242", i),
			nodeID: fmt.Sprintf("node%d", i),
			path:   path,
		})
	}
	t.Cleanup(func() {
		for _, m := range c.members {
			c.stop(m)
		}
	})
	c.start(c.members[0], Bootstrap)
	c.waitLeader(c.members[0])
	for _, m := range c.members[1:] {
		c.join(m)
	}
	return c
}

func (c *testCluster) config(m *testMember) Config {
	cfg := Config{
		NodeID: m.nodeID, Addr: m.addr, StoragePath: m.path,
		Tick: 20 * time.Millisecond, ElectionTick: 10, HeartbeatTick: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if c.cfg != nil {
		c.cfg(&cfg)
	}
	return cfg
}

func (c *testCluster) start(m *testMember, mode StartMode) {
	c.t.Helper()
	c.startWith(m, mode, nil)
}

func (c *testCluster) startWith(m *testMember, mode StartMode, seed []*api.RaftMember) {
	c.t.Helper()
	st, err := OpenDiskStorage(m.path)
	if err != nil {
		c.t.Fatal(err)
	}
	m.storage = st
	m.store = NewStore(nil)
	m.node, err = New(c.config(m), st, m.store, c.net.Transport(m.addr, m.nodeID))
	if err != nil {
		c.t.Fatal(err)
	}
	m.node.SeedMembers(seed)
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.errc = make(chan error, 1)
	go func() { m.errc <- m.node.Run(ctx, mode) }()
	select {
	case <-m.node.Started():
	case err := <-m.errc:
		c.t.Fatalf("member %d did not start: %v", m.idx, err)
	}
	if mode == Bootstrap {
		_ = m.node.Campaign(ctx)
	}
}

func (c *testCluster) stop(m *testMember) {
	if m.cancel == nil {
		return
	}
	m.cancel()
	select {
	case <-m.errc:
	case <-time.After(10 * time.Second):
		c.t.Errorf("member %d did not stop", m.idx)
	}
	m.cancel = nil
	_ = m.storage.Close()
}

func (c *testCluster) join(m *testMember) {
	c.t.Helper()
	l := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := l.node.AddMember(ctx, m.nodeID, m.addr)
	if err != nil {
		c.t.Fatalf("add member %d: %v", m.idx, err)
	}
	st, err := OpenDiskStorage(m.path)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := st.SetRaftID(id); err != nil {
		c.t.Fatal(err)
	}
	_ = st.Close()
	c.startWith(m, JoinExisting, l.node.RaftMembers())
	c.eventually(10*time.Second, fmt.Sprintf("member %d to catch up", m.idx), func() bool {
		return l.node.transport.Reachable(id) && m.node.AppliedIndex() >= l.node.AppliedIndex()
	})
}

func (c *testCluster) running() []*testMember {
	var out []*testMember
	for _, m := range c.members {
		if m.cancel != nil {
			out = append(out, m)
		}
	}
	return out
}

// leader waits for a running member that leads, and returns it.
func (c *testCluster) leader() *testMember {
	c.t.Helper()
	var found *testMember
	c.eventually(15*time.Second, "a leader", func() bool {
		for _, m := range c.running() {
			if m.node.IsLeader() {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

func (c *testCluster) waitLeader(m *testMember) {
	c.t.Helper()
	c.eventually(15*time.Second, fmt.Sprintf("member %d to lead", m.idx), m.node.IsLeader)
}

func (c *testCluster) eventually(d time.Duration, what string, cond func() bool) {
	c.t.Helper()
	testutil.Eventually(c.t, d, 10*time.Millisecond, cond, "%s", what)
}

// converged waits until every running member applied the same index and
// holds the same state, and returns the hash.
func (c *testCluster) converged() string {
	c.t.Helper()
	var hash string
	c.eventually(20*time.Second, "members to converge", func() bool {
		ms := c.running()
		idx := ms[0].node.AppliedIndex()
		hash = ms[0].store.Hash()
		for _, m := range ms[1:] {
			if m.node.AppliedIndex() != idx || m.store.Hash() != hash {
				return false
			}
		}
		return true
	})
	return hash
}

func createService(ctx context.Context, s *Store, name string) error {
	return s.Update(ctx, func(tx *Tx) error {
		return tx.Create(&api.Service{Id: "id-" + name, Spec: &api.ServiceSpec{Annotations: &api.Annotations{Name: name}}})
	})
}

// write creates a service through whichever member leads, retrying across
// leader changes. It returns once the write is acknowledged.
func (c *testCluster) write(name string) error {
	for attempt := 0; attempt < 50; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var err error = errdefs.ErrNoLeader
		for _, m := range c.running() {
			if m.node.IsLeader() {
				err = createService(ctx, m.store, name)
				break
			}
		}
		cancel()
		if err == nil || errdefs.IsAlreadyExists(err) && attempt > 0 {
			return nil
		}
		if !errdefs.IsUnavailable(err) && !errors.Is(err, errdefs.ErrDeadlineExceeded) {
			return err
		}
		time.Sleep(20 * time.Millisecond) // retry interval of a bounded loop (50 attempts), not a wait for a state
	}
	return fmt.Errorf("write %s: no leader took it", name)
}

func TestClusterCommitsConcurrentWritesAndConverges(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	const writes, clients = 10000, 32
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1)
				if n > writes {
					return
				}
				if err := c.write(fmt.Sprintf("svc-%05d", n)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c.converged()
	for _, m := range c.members {
		var n int
		m.store.View(func(tx ReadTx) { n = len(tx.Services()) })
		if n != writes {
			t.Fatalf("member %d has %d services, want %d", m.idx, n, writes)
		}
	}
}

func TestRestartedMemberCatchesUpFromItsFiles(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	for i := 0; i < 100; i++ {
		if err := c.write(fmt.Sprintf("a%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	c.converged()
	victim := c.members[2]
	if victim.node.IsLeader() {
		victim = c.members[1]
	}
	c.stop(victim)
	for i := 0; i < 100; i++ {
		if err := c.write(fmt.Sprintf("b%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	c.start(victim, Restart)
	c.converged()
	var n int
	victim.store.View(func(tx ReadTx) { n = len(tx.Services()) })
	if n != 200 {
		t.Fatalf("restarted member has %d services, want 200", n)
	}
}

func TestIsolatedLeaderStepsDownAndMajorityElects(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	if err := c.write("before"); err != nil {
		t.Fatal(err)
	}
	old := c.leader()
	c.net.Isolate(old.addr)
	// CheckQuorum: the isolated leader must step down on its own.
	c.eventually(10*time.Second, "the isolated leader to step down", func() bool { return !old.node.IsLeader() })
	var fresh *testMember
	c.eventually(10*time.Second, "the majority to elect a leader", func() bool {
		for _, m := range c.running() {
			if m != old && m.node.IsLeader() {
				fresh = m
				return true
			}
		}
		return false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := createService(ctx, old.store, "minority-write")
	cancel()
	if err == nil {
		t.Fatal("the isolated member accepted a write")
	}
	if err := createService(context.Background(), fresh.store, "majority-write"); err != nil {
		t.Fatalf("majority write: %v", err)
	}
	c.net.Heal()
	c.converged()
	old.store.View(func(tx ReadTx) {
		if tx.ServiceByName("minority-write") != nil {
			t.Error("minority write survived")
		}
		if tx.ServiceByName("majority-write") == nil {
			t.Error("healed member lacks the majority's write")
		}
	})
}

func TestLaggingMemberCatchesUpBySnapshot(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.SnapshotInterval = 50
		cfg.LogEntriesForSlowFollowers = 5
	})
	lagger := c.members[2]
	if lagger.node.IsLeader() {
		lagger = c.members[1]
	}
	c.stop(lagger)
	for i := 0; i < 300; i++ {
		if err := c.write(fmt.Sprintf("s%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	l := c.leader()
	c.eventually(10*time.Second, "the leader to compact its log", func() bool {
		first, _ := l.storage.FirstIndex()
		return l.node.snapIndex.Load() > 0 && first > 10
	})
	// The figures metrics read: the leader's 300 proposals, its snapshots.
	if st := l.node.Stats(); st.Proposals.Count < 300 || st.Snapshots.Count == 0 || st.SnapshotBytes == 0 || st.CommitIndex < 300 {
		t.Errorf("leader stats: %+v", st)
	}
	lagStore := lagger.storage
	_ = lagStore
	c.start(lagger, Restart)
	c.converged()
	snap, _ := lagger.storage.Snapshot()
	if snap.Metadata.Index == 0 {
		t.Fatal("the lagging member caught up without a snapshot")
	}
	var n int
	lagger.store.View(func(tx ReadTx) { n = len(tx.Services()) })
	if n != 300 {
		t.Fatalf("lagging member has %d services, want 300", n)
	}
}

func TestWritesFailFastWithoutQuorum(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	l := c.leader()
	for _, m := range c.members {
		if m != l {
			c.stop(m)
		}
	}
	c.eventually(10*time.Second, "the leader to step down", func() bool { return !l.node.IsLeader() })
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := createService(ctx, l.store, "x")
	if err == nil || !errdefs.IsUnavailable(err) {
		t.Fatalf("got %v, want an unavailable error", err)
	}
	if time.Since(start) > time.Second {
		t.Fatalf("write took %v to fail; it must fail fast", time.Since(start))
	}
	t.Log(err)
}

// Raft takes one membership change at a time and silently drops a second
// proposed while the first is unapplied; concurrent changes through the
// leader must all apply, not wait out their deadline (`node promote h2 h3`
// timed out joining the second manager).
func TestConcurrentMembershipChangesAllApply(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	l := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const n = 2 // 5 voters, 3 running: still a quorum
	ids := make([]uint64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ids[i], errs[i] = l.node.AddMember(ctx, fmt.Sprintf("extra%d", i), fmt.Sprintf("extra%d:4242", i))
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
	}
	if got := len(l.node.RaftMembers()); got != 3+n {
		t.Fatalf("members after the adds: %d, want %d", got, 3+n)
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = l.node.RemoveMember(ctx, ids[i])
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("remove %d: %v", i, err)
		}
	}
	if got := len(l.node.RaftMembers()); got != 3 {
		t.Fatalf("members after the removals: %d, want 3", got)
	}
}
