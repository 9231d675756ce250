package raftstore

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

// Large entries bring a snapshot long before the entry count does, and the
// log kept after it for slow followers is capped by bytes: the log never
// grows to SnapshotInterval megabyte-sized entries.
func TestSnapshotsBoundTheLogByBytes(t *testing.T) {
	c := newTestCluster(t, 1, nil) // SnapshotInterval 10,000 entries, 500 kept
	m := c.leader()
	big := randomText(900 << 10)
	// A bound, not a measure: 18 MiB through deflate, inflate and the
	// race detector's checks of every byte copied takes 10-30 s under
	// -race on a loaded 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// ~18 MiB of log in 20 entries (over twice the 8 MiB that brings a
	// snapshot), over a state of about one entry.
	for i := 0; i < 20; i++ {
		err := m.store.Update(ctx, func(tx *Tx) error {
			c := &api.Config{Id: "c", Spec: &api.ConfigSpec{Annotations: &api.Annotations{Name: "c"}, Data: []byte(fmt.Sprint(i, big))}}
			if old := tx.Config("c"); old != nil {
				c.Meta = old.Meta
				return tx.Update(c)
			}
			return tx.Create(c)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	c.eventually(10*time.Second, "a snapshot taken for the bytes of the log", func() bool {
		snap, err := m.storage.Snapshot()
		return err == nil && snap.Metadata.Index > 0
	})
	first, _ := m.storage.FirstIndex()
	last, _ := m.storage.LastIndex()
	ents, err := m.storage.Entries(first, last+1, ^uint64(0))
	if err != nil {
		t.Fatal(err)
	}
	var kept int
	for _, e := range ents {
		kept += e.Size()
	}
	// At most a snapshot's worth of entries since the last one, plus what
	// the last one kept, plus the entry that crossed the line.
	if first <= 2 || kept > snapshotMinLogBytes+keepLogBytes+len(big)+4096 {
		t.Fatalf("log from index %d holds %d bytes after 18 MiB of writes", first, kept)
	}
}

// A member restarted from its snapshot measures the log it replays against
// that snapshot's size, as the member that took it did: it takes no new
// snapshot while replaying less log than the snapshot holds (less than
// snapshotLogRatio times it brings none; it used to count from zero, and
// snapshotted the whole store after every 8 MiB of log it replayed).
func TestRestartedMemberMeasuresTheLogAgainstItsSnapshot(t *testing.T) {
	c := newTestCluster(t, 1, nil) // SnapshotInterval 10,000 entries
	m := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// Configs of 512 KiB that do not compress: the state grows with the
	// log, so the second snapshot (at about 16 MiB of log) holds about
	// 16 MiB, and up to 14 MiB of log written after it bring no third.
	write := func(i int) {
		t.Helper()
		data := make([]byte, 512<<10)
		_, _ = crand.Read(data)
		err := m.store.Update(ctx, func(tx *Tx) error {
			return tx.Create(&api.Config{Id: fmt.Sprint("c", i), Spec: &api.ConfigSpec{Annotations: &api.Annotations{Name: fmt.Sprint("c", i)}, Data: data}})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	snapIndex := func() uint64 {
		snap, err := m.storage.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		return snap.Metadata.Index
	}
	i := 0
	for ; i < 200 && m.node.lastSnapBytes.Load() < 14<<20; i++ {
		write(i)
	}
	c.eventually(30*time.Second, "the snapshot written", func() bool { return !m.node.snapshotting.Load() })
	taken, size := snapIndex(), m.node.lastSnapBytes.Load()
	if size < 14<<20 {
		t.Fatalf("no snapshot of 14 MiB or more after %d writes of 512 KiB (last %d bytes)", i, size)
	}
	// More log than 8 MiB, less than the snapshot (what was applied while
	// it was written counts).
	for ; int64(m.node.logBytes.Load()) < int64(size)-(2<<20); i++ {
		write(i)
	}
	if lb := m.node.logBytes.Load(); lb < 9<<20 {
		t.Fatalf("%d bytes of log after the snapshot of %d: want over 9 MiB (precondition)", lb, size)
	}
	c.eventually(30*time.Second, "no snapshot being written", func() bool { return !m.node.snapshotting.Load() })
	if got := snapIndex(); got != taken {
		t.Fatalf("a snapshot at index %d after %d bytes of log, under the last snapshot's %d bytes (precondition)", got, m.node.logBytes.Load(), size)
	}
	last := m.node.AppliedIndex()
	c.stop(m)
	c.start(m, Restart)
	c.eventually(30*time.Second, "the log replayed", func() bool { return m.node.AppliedIndex() >= last })
	c.eventually(30*time.Second, "no snapshot being written", func() bool { return !m.node.snapshotting.Load() })
	if got := snapIndex(); got != taken {
		t.Fatalf("the restarted member took a snapshot (index %d, was %d) after replaying %d bytes of log, less than its snapshot's %d", got, taken, m.node.logBytes.Load(), size)
	}
	if got := m.node.lastSnapBytes.Load(); got != size {
		t.Fatalf("restarted member records a last snapshot of %d bytes, want %d", got, size)
	}
}
