package raftstore

import (
	"context"
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
