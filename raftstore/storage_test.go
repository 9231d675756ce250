package raftstore

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

func openTest(t *testing.T, path string) *DiskStorage {
	t.Helper()
	s, err := OpenDiskStorage(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func ents(from, to, term uint64) []raftpb.Entry {
	var out []raftpb.Entry
	for i := from; i <= to; i++ {
		out = append(out, raftpb.Entry{Index: i, Term: term, Data: []byte{byte(i)}})
	}
	return out
}

// TestStorageContract checks the raft.Storage contract on DiskStorage: the
// sentinel errors, Term after compaction and snapshots, and conflicting
// suffix replacement.
func TestStorageContract(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "raft.db"))
	if !s.IsEmpty() {
		t.Fatal("new storage is not empty")
	}
	if err := s.Save(raftpb.HardState{Term: 1, Commit: 5}, ents(1, 10, 1), raftpb.Snapshot{}, true); err != nil {
		t.Fatal(err)
	}
	if fi, _ := s.FirstIndex(); fi != 1 {
		t.Fatalf("first index %d, want 1", fi)
	}
	if li, _ := s.LastIndex(); li != 10 {
		t.Fatalf("last index %d, want 10", li)
	}
	if _, err := s.Entries(5, 12, 1<<20); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("entries past the end: %v, want ErrUnavailable", err)
	}
	got, err := s.Entries(3, 6, 1<<20)
	if err != nil || len(got) != 3 || got[0].Index != 3 {
		t.Fatalf("entries 3..6: %v %v", got, err)
	}
	// maxSize still returns at least one entry.
	if got, _ := s.Entries(3, 6, 1); len(got) != 1 {
		t.Fatalf("maxSize 1 returned %d entries, want 1", len(got))
	}

	// A conflicting suffix replaces the old one, on disk too.
	if err := s.Save(raftpb.HardState{Term: 2, Commit: 5}, ents(8, 9, 2), raftpb.Snapshot{}, true); err != nil {
		t.Fatal(err)
	}
	if li, _ := s.LastIndex(); li != 9 {
		t.Fatalf("last index after truncation %d, want 9", li)
	}
	if tm, _ := s.Term(8); tm != 2 {
		t.Fatalf("term of 8 is %d, want 2", tm)
	}

	// Snapshot + compaction.
	snap, err := s.CreateSnapshot(6, &raftpb.ConfState{Voters: []uint64{1}}, []byte("state"), 2)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Metadata.Index != 6 || snap.Metadata.Term != 1 {
		t.Fatalf("snapshot metadata %+v", snap.Metadata)
	}
	if fi, _ := s.FirstIndex(); fi != 5 {
		t.Fatalf("first index after compaction %d, want 5 (2 entries kept before 6 besides the dummy)", fi)
	}
	if _, err := s.Entries(2, 5, 1<<20); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("entries before the first index: %v, want ErrCompacted", err)
	}
	if _, err := s.Term(2); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("term of a compacted index: %v, want ErrCompacted", err)
	}
	if tm, err := s.Term(4); err != nil || tm != 1 {
		t.Fatalf("term of the compaction point: %d %v", tm, err)
	}
	if _, err := s.Term(20); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("term past the end: %v, want ErrUnavailable", err)
	}

	// Applying a snapshot from a leader replaces the log.
	in := raftpb.Snapshot{Data: []byte("leader-state"), Metadata: raftpb.SnapshotMetadata{Index: 50, Term: 3, ConfState: raftpb.ConfState{Voters: []uint64{1, 2}}}}
	if err := s.Save(raftpb.HardState{Term: 3, Commit: 50}, nil, in, true); err != nil {
		t.Fatal(err)
	}
	if tm, _ := s.Term(50); tm != 3 {
		t.Fatalf("term at the snapshot index %d, want 3", tm)
	}
	if fi, _ := s.FirstIndex(); fi != 51 {
		t.Fatalf("first index after snapshot %d, want 51", fi)
	}
	if _, err := s.Entries(49, 51, 1<<20); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("entries before the snapshot: %v", err)
	}
	// An older snapshot is refused.
	old := raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{Index: 10, Term: 1}}
	if err := s.mem.ApplySnapshot(old); !errors.Is(err, raft.ErrSnapOutOfDate) {
		t.Fatalf("old snapshot: %v", err)
	}
}

func TestStorageSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	s, err := OpenDiskStorage(path)
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 3*snapshotChunk+123) // spans several chunks
	for i := range big {
		big[i] = byte(i * 7)
	}
	if err := s.SetRaftID(42); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(raftpb.HardState{Term: 2, Vote: 42, Commit: 30}, ents(1, 40, 2), raftpb.Snapshot{}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSnapshot(30, &raftpb.ConfState{Voters: []uint64{42}}, big, 5); err != nil {
		t.Fatal(err)
	}
	wantHS, wantCS, _ := s.InitialState()
	_ = s.Close()

	r := openTest(t, path)
	hs, cs, _ := r.InitialState()
	if !reflect.DeepEqual(hs, wantHS) || !reflect.DeepEqual(cs, wantCS) {
		t.Fatalf("state after reopen %+v %+v, want %+v %+v", hs, cs, wantHS, wantCS)
	}
	if r.RaftID() != 42 {
		t.Fatalf("raft ID %d after reopen", r.RaftID())
	}
	snap, _ := r.Snapshot()
	if snap.Metadata.Index != 30 || !reflect.DeepEqual(snap.Data, big) {
		t.Fatalf("snapshot after reopen: index %d, %d bytes", snap.Metadata.Index, len(snap.Data))
	}
	if fi, _ := r.FirstIndex(); fi != 26 {
		t.Fatalf("first index after reopen %d, want 26", fi)
	}
	if li, _ := r.LastIndex(); li != 40 {
		t.Fatalf("last index after reopen %d, want 40", li)
	}
}

func TestDamagedStorageIsRefusedWithItsName(t *testing.T) {
	page := int64(os.Getpagesize())
	damage := map[string]func(path string) error{
		"truncated": func(p string) error { return os.Truncate(p, 3*page) },
		"meta page overwritten": func(p string) error {
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt([]byte(strings.Repeat("\xa5", int(2*page))), page)
			return err
		},
		"entry bytes flipped": func(p string) error {
			p = segmentPath(p, 1)
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			// The entries carry a recognisable payload; flip one of them.
			i := strings.Index(string(b), "payload-0017")
			if i < 0 {
				return errors.New("payload not found in file")
			}
			b[i+8] ^= 0xff
			return os.WriteFile(p, b, 0o600)
		},
	}
	for name, hurt := range damage {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "raft", "raft.db")
			s, err := OpenDiskStorage(path)
			if err != nil {
				t.Fatal(err)
			}
			var es []raftpb.Entry
			for i := uint64(1); i <= 40; i++ {
				es = append(es, raftpb.Entry{Index: i, Term: 1, Data: []byte(strings.Repeat("x", 200) + "payload-" + leftPad(i))})
			}
			if err := s.Save(raftpb.HardState{Term: 1, Commit: 40}, es, raftpb.Snapshot{}, true); err != nil {
				t.Fatal(err)
			}
			_ = s.Close()
			if err := hurt(path); err != nil {
				t.Fatal(err)
			}
			_, err = OpenDiskStorage(path)
			var de *DamagedError
			if !errors.As(err, &de) {
				t.Fatalf("damaged file opened (err %v)", err)
			}
			if !strings.Contains(err.Error(), de.Path) || !strings.HasPrefix(de.Path, path) || !strings.Contains(err.Error(), "To recover") {
				t.Fatalf("error does not name the file and the recovery: %v", err)
			}
		})
	}
}

func leftPad(i uint64) string {
	s := "0000" + string(rune('0'+i/10)) + string(rune('0'+i%10))
	return s[len(s)-4:]
}

// TestSaveGoesOnWhileASnapshotIsWritten: the Ready loop's Save of entries
// does not wait for CreateSnapshot to write the snapshot's bytes (tens of
// MiB at a million tasks: a Ready loop held that long sends no heartbeats
// and its followers depose it). On the old code the Save below waits for
// the lock CreateSnapshot holds, and the test times out.
func TestSaveGoesOnWhileASnapshotIsWritten(t *testing.T) {
	s, err := OpenDiskStorage(filepath.Join(t.TempDir(), "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var es []raftpb.Entry
	for i := uint64(1); i <= 10; i++ {
		es = append(es, raftpb.Entry{Index: i, Term: 1, Data: []byte("x")})
	}
	if err := s.Save(raftpb.HardState{Term: 1, Commit: 10}, es, raftpb.Snapshot{}, true); err != nil {
		t.Fatal(err)
	}
	saved := make(chan error, 1)
	s.duringSnapshotWrite = func() {
		go func() {
			saved <- s.Save(raftpb.HardState{Term: 1, Commit: 11}, []raftpb.Entry{{Index: 11, Term: 1, Data: []byte("y")}}, raftpb.Snapshot{}, true)
		}()
		select {
		case err := <-saved:
			if err != nil {
				t.Errorf("Save during the snapshot's write: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Save waited for the snapshot's write (10 s)")
		}
	}
	snap, err := s.CreateSnapshot(8, &raftpb.ConfState{Voters: []uint64{1}}, []byte("state at 8"), 2)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Metadata.Index != 8 || snap.Metadata.Term != 1 {
		t.Fatalf("snapshot metadata %+v, want index 8 term 1", snap.Metadata)
	}
	if last, _ := s.LastIndex(); last != 11 {
		t.Fatalf("last index %d after the snapshot, want 11 (the Save during it)", last)
	}
	if first, _ := s.FirstIndex(); first != 7 {
		t.Fatalf("first index %d, want 7 (compacted to keep 2 before 8)", first)
	}
	if _, err := s.CreateSnapshot(8, &raftpb.ConfState{Voters: []uint64{1}}, []byte("again"), 2); !errors.Is(err, raft.ErrSnapOutOfDate) {
		t.Fatalf("a second snapshot at 8: %v, want ErrSnapOutOfDate", err)
	}
}
