package raftstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"go.etcd.io/raft/v3/raftpb"
	"golang.org/x/sys/unix"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/testutil"
)

// mountTmpfs mounts a tmpfs of size bytes on a fresh directory and
// unmounts it when the test ends, failed or not. Register it before the
// members that use it, so that they stop first.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	testutil.RequiresRoot(t) // mounting a small tmpfs to fill
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			// Something still holds it: detach it so it never outlives the test.
			if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		}
	})
	return dir
}

// fillDisk writes a file in dir until its file system is full and returns
// the file's path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for size := len(buf); size >= 512; {
		if _, err := f.Write(buf[:size]); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			size /= 2
		}
	}
	return path
}

// createPadded creates a service whose label carries pad bytes.
func createPadded(ctx context.Context, s *Store, name string, pad int) error {
	return s.Update(ctx, func(tx *Tx) error {
		sv := svc("id-"+name, name)
		sv.Spec.Annotations.Labels = map[string]string{"pad": randomText(pad)}
		return tx.Create(sv)
	})
}

// checkDiskFault asserts that err is the disk fault of the raft log at
// path: the errno, the file and the fix in its text, and its class.
func checkDiskFault(t *testing.T, err error, path string, errno syscall.Errno) {
	t.Helper()
	var df *DiskFaultError
	if !errors.As(err, &df) {
		t.Fatalf("got %v (%T), want a *DiskFaultError", err, err)
	}
	msg := err.Error()
	for _, want := range []string{errno.Error(), "writing " + path, "then the manager resumes by itself"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if !errors.Is(err, errno) || df.Errno != errno || df.Path != path {
		t.Errorf("fault %+v, want errno %v on %s", df, errno, path)
	}
	if errno == syscall.ENOSPC && !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Errorf("a full disk is not of class resource exhausted: %v", err)
	}
}

func serviceCount(s *Store) (n int) {
	s.View(func(tx ReadTx) { n = len(tx.Services()) })
	return n
}

func TestDiskFullRefusesWritesNamesTheFileAndResumes(t *testing.T) {
	dir := mountTmpfs(t, 16<<20)
	var probes atomic.Int64
	c := newTestClusterIn(t, 1, nil, func(int) string { return filepath.Join(dir, "raft") })
	m := c.members[0]
	counter := func(op string) error {
		if op == "probe" {
			probes.Add(1)
		}
		return nil // count only: the disk itself fails
	}
	m.node.injectFault.Store(&counter)
	ctx := context.Background()
	acked := map[string]bool{}
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("before-%d", i)
		if err := createPadded(ctx, m.store, name, 1<<10); err != nil {
			t.Fatal(err)
		}
		acked[name] = true
	}

	filler := fillDisk(t, dir)
	// bbolt reuses pages it already wrote: write until it needs new ones.
	untilFault := func(prefix string) error {
		t.Helper()
		for i := 0; i < 2000; i++ {
			name := fmt.Sprintf("%s-%d", prefix, i)
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			start := time.Now()
			err := createPadded(wctx, m.store, name, 32<<10)
			cancel()
			if err == nil {
				acked[name] = true
				continue
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("the write took %v to fail; it must fail fast", took)
			}
			return err
		}
		t.Fatal("the raft log never hit the full disk")
		return nil
	}
	first := untilFault("fill")
	t.Logf("first failed write: %v", first)
	checkDiskFault(t, first, m.path, syscall.ENOSPC)
	if !strings.Contains(first.Error(), "in flight") {
		t.Errorf("the write in flight when the disk filled must say it may still be applied: %v", first)
	}

	// From now on writes fail at once with the fault, reads still work.
	c.eventually(5*time.Second, "the fault to be recorded", func() bool { return m.node.DiskFault() != nil })
	start := time.Now()
	err := createPadded(ctx, m.store, "while-full", 10)
	if time.Since(start) > 100*time.Millisecond {
		t.Errorf("a write during the fault took %v to fail", time.Since(start))
	}
	checkDiskFault(t, err, m.path, syscall.ENOSPC)
	if strings.Contains(err.Error(), "in flight") {
		t.Errorf("a write refused during the fault is not in flight: %v", err)
	}
	if err := m.node.LinearizableRead(ctx); !errors.As(err, new(*DiskFaultError)) {
		t.Errorf("linearizable read during the fault: %v, want the disk fault", err)
	}
	if m.node.IsLeader() {
		t.Error("a member that cannot write its log still leads")
	}
	if got := serviceCount(m.store); got < len(acked) {
		t.Errorf("the store holds %d services, %d were acknowledged", got, len(acked))
	}
	ms := m.node.Members()
	if len(ms) != 1 || ms[0].DiskFault != "disk full" || ms[0].Reachable {
		t.Errorf("members during the fault: %+v, want this member unreachable with \"disk full\"", ms)
	}
	// It keeps probing and stays faulted while the disk is full.
	base := probes.Load()
	c.eventually(10*time.Second, "three more probes", func() bool { return probes.Load() >= base+3 })
	if m.node.DiskFault() == nil {
		t.Fatal("the fault cleared while the disk is still full")
	}

	// Restarted on the full disk, it comes up from its file (nothing
	// there is damaged), then meets the full disk again.
	c.stop(m)
	c.start(m, Restart)
	c.eventually(10*time.Second, "the member restarted on the full disk to replay its log", func() bool {
		return serviceCount(m.store) >= len(acked)
	})
	c.eventually(10*time.Second, "the restarted member to lead or meet the fault", func() bool {
		return m.node.IsLeader() || m.node.DiskFault() != nil
	})
	if m.node.DiskFault() == nil {
		checkDiskFault(t, untilFault("again"), m.path, syscall.ENOSPC)
	}
	checkDiskFault(t, createPadded(ctx, m.store, "while-full-again", 10), m.path, syscall.ENOSPC)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	c.eventually(10*time.Second, "a write to succeed after space was freed", func() bool {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return createPadded(wctx, m.store, "after-free", 10) == nil
	})
	acked["after-free"] = true
	t.Logf("resumed %v after space was freed", time.Since(freed).Round(time.Millisecond))
	if m.node.DiskFault() != nil {
		t.Error("fault still recorded after resuming")
	}
	select {
	case err := <-m.errc:
		t.Fatalf("the member stopped: %v", err)
	default:
	}
	m.store.View(func(tx ReadTx) {
		for name := range acked {
			if tx.ServiceByName(name) == nil {
				t.Errorf("acknowledged write %s is lost", name)
			}
		}
	})

	// What is on disk is what the member had in memory.
	hash, applied := m.store.Hash(), m.node.AppliedIndex()
	c.stop(m)
	c.start(m, Restart)
	c.waitLeader(m)
	c.eventually(10*time.Second, "the restarted member to replay its log", func() bool { return m.node.AppliedIndex() >= applied })
	if got := m.store.Hash(); got != hash {
		t.Errorf("after a restart from disk the store differs from the one in memory before")
	}
	m.store.View(func(tx ReadTx) {
		for name := range acked {
			if tx.ServiceByName(name) == nil {
				t.Errorf("acknowledged write %s is not on disk", name)
			}
		}
	})
}

func TestDiskFullFollowerStopsAcknowledgingThenCatchesUp(t *testing.T) {
	dir := mountTmpfs(t, 8<<20)
	c := newTestClusterIn(t, 3, nil, func(i int) string {
		if i == 2 {
			return filepath.Join(dir, "raft")
		}
		return ""
	})
	f := c.members[2]
	if f.node.IsLeader() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := f.node.TransferLeadership(ctx, c.members[0].node.RaftID()); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	filler := fillDisk(t, dir)
	written := 0
	for i := 0; f.node.DiskFault() == nil; i++ {
		if i == 2000 {
			t.Fatal("the follower's disk never filled up")
		}
		if err := c.writePadded(fmt.Sprintf("w%d", i), 16<<10); err != nil {
			t.Fatalf("write %d with one follower's disk full: %v", i, err)
		}
		written++
	}
	checkDiskFault(t, f.node.DiskFault(), f.path, syscall.ENOSPC)
	// The others go on committing.
	for i := 0; i < 30; i++ {
		if err := c.writePadded(fmt.Sprintf("x%d", i), 1<<10); err != nil {
			t.Fatalf("write with one follower's disk full: %v", err)
		}
		written++
	}
	l := c.leader()
	c.eventually(5*time.Second, "the leader to show the follower's disk fault", func() bool {
		for _, ms := range l.node.Members() {
			if ms.RaftID == f.node.RaftID() {
				return ms.DiskFault == "disk full" && !ms.Reachable
			}
		}
		return false
	})
	if err := createService(context.Background(), f.store, "via-full-follower"); !errors.As(err, new(*DiskFaultError)) {
		t.Errorf("a write on the full follower: %v, want its disk fault", err)
	}
	// It knows whom to forward calls to, from the messages it refuses.
	c.eventually(5*time.Second, "the full follower to know the leader", func() bool { return f.node.Leader() == l.node.RaftID() })

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	c.converged()
	if got := serviceCount(f.store); got != written {
		t.Errorf("the follower holds %d services after catching up, want %d", got, written)
	}
	c.eventually(5*time.Second, "the leader to see the follower healthy", func() bool {
		for _, ms := range l.node.Members() {
			if ms.RaftID == f.node.RaftID() {
				return ms.DiskFault == "" && ms.Reachable
			}
		}
		return false
	})
	for _, m := range c.members {
		select {
		case err := <-m.errc:
			t.Fatalf("member %d stopped: %v", m.idx, err)
		default:
		}
	}
}

func TestDiskFullLeaderStopsLeadingAndRejoins(t *testing.T) {
	dir := mountTmpfs(t, 8<<20)
	c := newTestClusterIn(t, 3, nil, func(i int) string {
		if i == 0 {
			return filepath.Join(dir, "raft")
		}
		return ""
	})
	old := c.members[0]
	c.waitLeader(old)
	sub, unsubscribe := old.node.SubscribeLeadership()
	defer unsubscribe()
	filler := fillDisk(t, dir)
	acked := map[string]bool{}
	for i := 0; old.node.DiskFault() == nil; i++ {
		if i == 2000 {
			t.Fatal("the leader's disk never filled up")
		}
		name := fmt.Sprintf("w%d", i)
		if err := c.writePadded(name, 16<<10); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		acked[name] = true
	}
	select {
	case <-sub:
	case <-time.After(5 * time.Second):
		t.Fatal("leadership subscribers were not told")
	}
	if old.node.IsLeader() {
		t.Fatal("the leader whose disk is full still leads")
	}
	// The others elect a leader and go on.
	for i := 0; i < 30; i++ {
		name := fmt.Sprintf("x%d", i)
		if err := c.writePadded(name, 1<<10); err != nil {
			t.Fatalf("write with the old leader's disk full: %v", err)
		}
		acked[name] = true
	}
	l := c.leader()
	if l == old {
		t.Fatal("the faulted member leads")
	}
	c.eventually(5*time.Second, "the faulted member to know the new leader", func() bool { return old.node.Leader() == l.node.RaftID() })
	if m := old.node.LeaderMember(); m == nil || m.NodeId != l.nodeID {
		t.Errorf("the faulted member would forward to %v, want %s", m, l.nodeID)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	c.converged()
	for _, m := range c.members {
		m.store.View(func(tx ReadTx) {
			for name := range acked {
				if tx.ServiceByName(name) == nil {
					t.Errorf("member %d lacks acknowledged write %s", m.idx, name)
				}
			}
		})
		select {
		case err := <-m.errc:
			t.Fatalf("member %d stopped: %v", m.idx, err)
		default:
		}
	}
}

// writePadded is write with a padded service, also retrying writes that a
// member with a disk fault refused or lost in flight.
func (c *testCluster) writePadded(name string, pad int) error {
	var err error
	for attempt := 0; attempt < 100; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = errdefs.ErrNoLeader
		for _, m := range c.running() {
			if m.node.IsLeader() {
				err = createPadded(ctx, m.store, name, pad)
				break
			}
		}
		cancel()
		if err == nil || errdefs.IsAlreadyExists(err) && attempt > 0 {
			return nil
		}
		if !errdefs.IsUnavailable(err) && !errors.Is(err, errdefs.ErrDeadlineExceeded) && !errors.As(err, new(*DiskFaultError)) {
			return err
		}
		time.Sleep(20 * time.Millisecond) // retry interval of a bounded loop (100 attempts), not a wait for a state
	}
	return fmt.Errorf("write %s: %w", name, err)
}

// TestInjectedDiskFaultBacksOffAndResumes drives the fault path with an
// injected ENOSPC and a fake clock: the probe backoff doubles from
// DiskRetryMin to DiskRetryMax, and the member resumes from its file with
// nothing applied twice and nothing applied that never reached the disk.
func TestInjectedDiskFaultBacksOffAndResumes(t *testing.T) {
	clock := clockwork.NewFakeClock()
	path := filepath.Join(t.TempDir(), "raft.db")
	// Encrypted, as every manager's log is: resuming reopens it with its key.
	st, err := OpenEncryptedDiskStorage(path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	store := NewStore(nil)
	cfg := Config{NodeID: "node0", Addr: "m0:4242", StoragePath: path, Clock: clock, Tick: 100 * time.Millisecond,
		DiskRetryMin: 100 * time.Millisecond, DiskRetryMax: 800 * time.Millisecond, DiskProbeBytes: 64 << 10,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	n, err := New(cfg, st, store, NewMemNetwork().Transport("m0:4242", "node0"))
	if err != nil {
		t.Fatal(err)
	}
	var failing atomic.Bool
	var probes atomic.Int64
	inject := func(op string) error {
		if op == "probe" {
			probes.Add(1)
		}
		if failing.Load() {
			return fmt.Errorf("persist raft state to %s: %w", path, &os.PathError{Op: "write", Path: path, Err: syscall.ENOSPC})
		}
		return nil
	}
	n.injectFault.Store(&inject)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- n.Run(ctx, Bootstrap) }()
	t.Cleanup(func() {
		cancel()
		<-errc
		_ = st.Close()
	})
	<-n.Started()
	lead := func(what string) {
		t.Helper()
		waitFor(t, 10*time.Second, what, func() bool {
			clock.Advance(cfg.Tick)
			return n.IsLeader()
		})
	}
	lead("the member to lead")
	for i := 0; i < 3; i++ {
		if err := createService(ctx, store, fmt.Sprintf("ok%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	sub, unsubscribe := n.SubscribeLeadership()
	defer unsubscribe()

	failing.Store(true)
	err = createService(ctx, store, "inflight")
	checkDiskFault(t, err, path, syscall.ENOSPC)
	if !strings.Contains(err.Error(), "in flight") {
		t.Errorf("the write in flight must say it may still be applied: %v", err)
	}
	select {
	case <-sub:
	default:
		t.Error("leadership subscribers were not told")
	}
	if n.IsLeader() {
		t.Error("still leading with a disk fault")
	}
	df := n.DiskFault()
	if df == nil || !df.Since.Equal(clock.Now()) {
		t.Fatalf("fault %+v, want one since %v", df, clock.Now())
	}
	if err := createService(ctx, store, "refused"); !errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "in flight") {
		t.Errorf("a write during the fault: %v, want the disk fault", err)
	}

	// Probes wait 100, 200, 400, 800, 800 ms: the backoff doubles and is
	// bounded. Each wait is one timer besides raft's ticker.
	bctx, bcancel := context.WithTimeout(ctx, 10*time.Second)
	defer bcancel()
	for i, wait := range []time.Duration{100, 200, 400, 800, 800} {
		wait *= time.Millisecond
		if err := clock.BlockUntilContext(bctx, 2); err != nil {
			t.Fatalf("probe %d was never scheduled: %v", i+1, err)
		}
		clock.Advance(wait - time.Millisecond)
		if got := probes.Load(); got != int64(i) {
			t.Fatalf("%d probes before %v had passed, want %d", got, wait, i)
		}
		clock.Advance(time.Millisecond)
		waitFor(t, 5*time.Second, fmt.Sprintf("probe %d after %v", i+1, wait), func() bool { return probes.Load() == int64(i+1) })
	}
	if n.DiskFault() == nil {
		t.Fatal("the fault cleared while probes fail")
	}

	failing.Store(false)
	if err := clock.BlockUntilContext(bctx, 2); err != nil {
		t.Fatal(err)
	}
	clock.Advance(cfg.DiskRetryMax)
	lead("the member to resume and lead")
	if n.DiskFault() != nil {
		t.Error("fault still recorded after resuming")
	}
	if err := createService(ctx, store, "after"); err != nil {
		t.Fatalf("write after resuming: %v", err)
	}
	store.View(func(tx ReadTx) {
		for _, name := range []string{"ok0", "ok1", "ok2", "after"} {
			if tx.ServiceByName(name) == nil {
				t.Errorf("acknowledged write %s is missing", name)
			}
		}
		if tx.ServiceByName("inflight") != nil || tx.ServiceByName("refused") != nil {
			t.Error("a write that never reached the disk was applied")
		}
	})
	select {
	case err := <-errc:
		t.Fatalf("the member stopped: %v", err)
	default:
	}
}

// TestGRPCPeerReportsItsDiskFault: over the real gRPC transport, a member
// whose log cannot be written ends the leader's streams with its fault;
// the leader shows it unreachable with "disk I/O error" until it speaks
// raft again.
func TestGRPCPeerReportsItsDiskFault(t *testing.T) {
	c := newGRPCCluster(t, 3, nil)
	l := c.leader()
	var f *grpcMember
	for _, m := range c.members {
		if m != l {
			f = m
		}
	}
	var failing atomic.Bool
	inject := func(string) error {
		if failing.Load() {
			return &os.PathError{Op: "write", Path: f.path, Err: syscall.EIO}
		}
		return nil
	}
	f.node.injectFault.Store(&inject)
	failing.Store(true)
	for i := 0; i < 5; i++ {
		if err := createService(context.Background(), l.store, fmt.Sprintf("g%d", i)); err != nil {
			t.Fatalf("write with one follower failing: %v", err)
		}
	}
	waitFor(t, 10*time.Second, "the follower's fault", func() bool { return f.node.DiskFault() != nil })
	if df := f.node.DiskFault(); !errors.Is(df, errdefs.ErrUnavailable) || !strings.Contains(df.Error(), "input/output error writing "+f.path) {
		t.Errorf("fault %v: want an unavailable input/output error naming %s", df, f.path)
	}
	view := func() MemberStatus {
		for _, ms := range l.node.Members() {
			if ms.RaftID == f.node.RaftID() {
				return ms
			}
		}
		return MemberStatus{}
	}
	waitFor(t, 10*time.Second, "the leader to show the disk fault", func() bool {
		ms := view()
		return ms.DiskFault == "disk I/O error" && !ms.Reachable
	})
	failing.Store(false)
	waitFor(t, 20*time.Second, "the follower to catch up", func() bool {
		return f.node.AppliedIndex() == l.node.AppliedIndex() && f.store.Hash() == l.store.Hash()
	})
	waitFor(t, 10*time.Second, "the leader to show the follower healthy", func() bool {
		ms := view()
		return ms.DiskFault == "" && ms.Reachable
	})
	if got := serviceCount(f.store); got != 5 {
		t.Errorf("the follower holds %d services, want 5", got)
	}
}

func TestDiskFaultErrorWordsAndClasses(t *testing.T) {
	path := "/var/lib/shoal/raft/raft.db"
	cases := []struct {
		err   error
		errno syscall.Errno
		class error
		text  string
	}{
		{&os.PathError{Op: "write", Path: path, Err: syscall.ENOSPC}, syscall.ENOSPC, errdefs.ErrResourceExhausted,
			"no space left on device writing /var/lib/shoal/raft/raft.db: free space on that file system, then the manager resumes by itself"},
		{fmt.Errorf("file resize error: %s", syscall.EDQUOT), syscall.EDQUOT, errdefs.ErrResourceExhausted, "raise the disk quota"},
		{syscall.EIO, syscall.EIO, errdefs.ErrUnavailable, "dmesg"},
		{fmt.Errorf("persist: %w", syscall.EROFS), syscall.EROFS, errdefs.ErrUnavailable, "remount it read-write"},
	}
	for _, tc := range cases {
		df := asDiskFault(path, tc.err)
		if df == nil {
			t.Errorf("%v: not recognised as a disk fault", tc.err)
			continue
		}
		if df.Errno != tc.errno || !errors.Is(df, tc.class) || !errors.Is(df, tc.errno) || !strings.Contains(df.Error(), tc.text) {
			t.Errorf("%v: got %q (errno %v), want class %v and %q", tc.err, df.Error(), df.Errno, tc.class, tc.text)
		}
		if got := errdefs.FromGRPC(errdefs.ToGRPC(inFlightError(df))); !errors.Is(got, tc.class) || !strings.Contains(got.Error(), df.Error()) {
			t.Errorf("in flight, across gRPC: %v", got)
		}
	}
	for _, err := range []error{errors.New("bad entry"), syscall.EACCES, nil} {
		if df := asDiskFault(path, err); df != nil {
			t.Errorf("%v taken for a disk fault", err)
		}
	}
	if df := (&DiskFaultError{Path: path, Errno: syscall.ENOSPC, AtStart: true}); !strings.Contains(df.Error(), "then start shoald again") {
		t.Errorf("at start: %q", df.Error())
	}
}

// TestDiskFullWhileSavingASnapshot: a snapshot that cannot be written is a
// disk fault like a failed Save (rather than a retry on every apply), and
// the snapshot is saved once the member resumes. The snapshot's write fails
// by injection (ENOSPC) while the log's writes succeed: on a real disk which
// of the two meets the full disk first depends on the slack bbolt keeps in
// its file.
func TestDiskFullWhileSavingASnapshot(t *testing.T) {
	c := newTestCluster(t, 1, func(cfg *Config) {
		cfg.SnapshotInterval = 30
		cfg.LogEntriesForSlowFollowers = 5
		cfg.DiskRetryMin, cfg.DiskRetryMax = 20*time.Millisecond, 50*time.Millisecond
	})
	m := c.members[0]
	var full atomic.Bool
	full.Store(true)
	inject := func(op string) error {
		if (op == "snapshot" || op == "probe") && full.Load() {
			return &os.PathError{Op: "write", Path: m.path, Err: syscall.ENOSPC}
		}
		return nil
	}
	m.node.injectFault.Store(&inject)
	ctx := context.Background()
	acked := 0
	for i := 0; m.node.DiskFault() == nil; i++ {
		if i == 200 {
			t.Fatal("the member never met the full disk")
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := createPadded(wctx, m.store, fmt.Sprintf("small-%d", i), 16)
		cancel()
		if err == nil {
			acked++
		}
		if err != nil && !errors.As(err, new(*DiskFaultError)) {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	checkDiskFault(t, m.node.DiskFault(), m.path, syscall.ENOSPC)
	if m.node.snapIndex.Load() != 0 {
		t.Fatal("the snapshot was saved on the full disk")
	}
	full.Store(false)
	c.eventually(10*time.Second, "a write after space was freed", func() bool {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return createPadded(wctx, m.store, "after", 16) == nil
	})
	c.eventually(10*time.Second, "the snapshot to be saved", func() bool { return m.node.snapIndex.Load() > 0 })
	if got := serviceCount(m.store); got < acked+1 {
		t.Errorf("the store holds %d services, %d were acknowledged", got, acked+1)
	}
	select {
	case err := <-m.errc:
		t.Fatalf("the member stopped: %v", err)
	default:
	}
}

// TestReopenRebuildsFromTheFileAndRefusesDamage: the reopen a resuming
// member does gives the same log as the file holds, and a file damaged
// meanwhile is a *DamagedError (fatal), not a disk fault to wait out.
func TestReopenRebuildsFromTheFileAndRefusesDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft", "raft.db")
	s := openTest(t, path)
	var es []raftpb.Entry
	for i := uint64(1); i <= 40; i++ {
		es = append(es, raftpb.Entry{Index: i, Term: 2, Data: []byte(strings.Repeat("x", 200) + "payload-" + leftPad(i))})
	}
	if err := s.Save(raftpb.HardState{Term: 2, Vote: 1, Commit: 30}, es, raftpb.Snapshot{}, true); err != nil {
		t.Fatal(err)
	}
	if err := s.reopen(); err != nil {
		t.Fatal(err)
	}
	hs, _, last, err := s.durableState()
	if err != nil || last != 40 || hs.Commit != 30 || hs.Term != 2 || hs.Vote != 1 {
		t.Fatalf("after reopen: hard state %+v, last %d, err %v", hs, last, err)
	}
	got, err := s.Entries(1, 41, 1<<30)
	if err != nil || !reflect.DeepEqual(got, es) {
		t.Fatalf("entries after reopen differ (err %v)", err)
	}
	// Damage the log under the open handle, as a disk could.
	path = segmentPath(path, 1)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(b), "payload-0017")
	if i < 0 {
		t.Fatal("payload not found in file")
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{b[i+8] ^ 0xff}, int64(i+8)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	err = s.reopen()
	var de *DamagedError
	if !errors.As(err, &de) || errors.As(err, new(*DiskFaultError)) {
		t.Fatalf("reopen of a damaged file: %v, want a *DamagedError", err)
	}
}
