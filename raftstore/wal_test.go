package raftstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/raft/v3/raftpb"
)

func testCipher(t testing.TB, key []byte) *recordCipher {
	t.Helper()
	if key == nil {
		return nil
	}
	rc, err := newRecordCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// walRecordOf finds the record of entry idx in the log of path: its
// segment, offset and length (length field included).
func walRecordOf(t *testing.T, path string, key []byte, idx uint64) (seg string, off, n int) {
	t.Helper()
	rc := testCipher(t, key)
	seqs, err := listSegments(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range seqs {
		p := segmentPath(path, seq)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		found := -1
		_, _, _ = scanSegment(b, seq, rc, func(typ byte, data []byte, o int64) error {
			var e raftpb.Entry
			if typ == walEntry && e.Unmarshal(data) == nil && e.Index == idx {
				found = int(o)
			}
			return nil
		})
		if found >= 0 {
			return p, found, 4 + int(binary.BigEndian.Uint32(b[found:]))
		}
	}
	t.Fatalf("entry %d not found in the log of %s", idx, path)
	return "", 0, 0
}

// corruptWAL flips a byte of entry idx's record (with fixCRC, the checksum
// is recomputed so only the decryption can tell).
func corruptWAL(t *testing.T, path string, key []byte, idx uint64, fixCRC bool) {
	t.Helper()
	seg, off, n := walRecordOf(t, path, key, idx)
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	rec := b[off : off+n]
	rec[len(rec)-3] ^= 0x20
	if fixCRC {
		binary.BigEndian.PutUint32(rec[4:], crc32.Checksum(rec[8:], crcTable))
	}
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// downgrade turns the raft log at path into the layout of schema 1 or 2
// (entries and hard state in bbolt, as the releases before the log
// segments wrote them) and removes its segments.
func downgrade(t *testing.T, path string, key []byte, schema uint32) {
	t.Helper()
	rc := testCipher(t, key)
	w, st, err := openWAL(path, rc)
	if err != nil {
		t.Fatal(err)
	}
	_ = w.close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, eb := tx.Bucket(bucketMeta), tx.Bucket(bucketEntries)
		var compacted uint64
		if v := meta.Get(keyCompacted); v != nil {
			b, err := rc.unseal(bucketMeta, keyCompacted, v)
			if err != nil {
				return err
			}
			compacted = binary.BigEndian.Uint64(b)
		}
		for _, e := range st.ents {
			if e.Index < compacted {
				continue
			}
			data, err := e.Marshal()
			if err != nil {
				return err
			}
			k := binary.BigEndian.AppendUint64(nil, e.Index)
			if err := eb.Put(k, rc.seal(bucketEntries, k, data)); err != nil {
				return err
			}
		}
		data, err := st.hs.Marshal()
		if err != nil {
			return err
		}
		if err := meta.Put(keyHardState, rc.seal(bucketMeta, keyHardState, data)); err != nil {
			return err
		}
		if err := meta.Delete(keyCompacted); err != nil {
			return err
		}
		return meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, schema))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := removeSegments(path); err != nil {
		t.Fatal(err)
	}
}

func schemaOf(t *testing.T, path string) (v uint32, entriesInBolt int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		v = binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keySchema))
		entriesInBolt = tx.Bucket(bucketEntries).Stats().KeyN
		return nil
	})
	return v, entriesInBolt
}

func saveBatches(t *testing.T, s *DiskStorage, batches, per int, pad int) {
	t.Helper()
	idx := uint64(1)
	if li, _ := s.LastIndex(); li > 0 {
		idx = li + 1
	}
	for b := 0; b < batches; b++ {
		var es []raftpb.Entry
		for i := 0; i < per; i++ {
			es = append(es, raftpb.Entry{Index: idx, Term: 1, Data: []byte(strings.Repeat("p", pad) + "payload-" + leftPad(idx%100))})
			idx++
		}
		if err := s.Save(raftpb.HardState{Term: 1, Vote: 1, Commit: idx - 1}, es, raftpb.Snapshot{}, true); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWALTornTailIsCutOff: a last write that reached the disk only in part
// (its end zeroed, or garbage after the last good record) is cut off at
// open, the log keeps every record before it, and appends after the cut
// read back.
func TestWALTornTailIsCutOff(t *testing.T) {
	tears := map[string]func(b []byte, lastStart, lastEnd int){
		"second half of the last write lost": func(b []byte, lastStart, lastEnd int) {
			clear(b[(lastStart+lastEnd)/2 : lastEnd])
		},
		"first sector of the last write lost": func(b []byte, lastStart, lastEnd int) {
			clear(b[lastStart : lastStart+512])
		},
		"only the first bytes of the last write": func(b []byte, lastStart, lastEnd int) {
			clear(b[lastStart+40 : lastEnd])
		},
	}
	for name, tear := range tears {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "raft", "raft.db")
			s, err := OpenDiskStorage(path)
			if err != nil {
				t.Fatal(err)
			}
			saveBatches(t, s, 3, 10, 200) // entries 1..30
			lastStart := int(s.wal.off)
			saveBatches(t, s, 1, 10, 200) // entries 31..40: the torn write
			lastEnd := int(s.wal.off)
			_ = s.Close()
			seg := segmentPath(path, 1)
			b, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			tear(b, lastStart, lastEnd)
			if err := os.WriteFile(seg, b, 0o600); err != nil {
				t.Fatal(err)
			}

			r, err := OpenDiskStorage(path)
			if err != nil {
				t.Fatalf("a torn tail was refused: %v", err)
			}
			li, _ := r.LastIndex()
			if li < 30 || li >= 40 {
				t.Fatalf("last index %d after the torn write, want 30..39", li)
			}
			if st, _ := os.Stat(seg); st.Size() >= int64(lastEnd) {
				t.Fatalf("segment is %d bytes: the torn tail was not cut off (good records end before %d)", st.Size(), lastEnd)
			}
			es, err := r.Entries(1, li+1, 1<<30)
			if err != nil || len(es) != int(li) {
				t.Fatalf("entries 1..%d: %d, %v", li, len(es), err)
			}
			saveBatches(t, r, 2, 10, 200)
			want, _ := r.LastIndex()
			_ = r.Close()
			r2 := openTest(t, path)
			if got, _ := r2.LastIndex(); got != want {
				t.Fatalf("last index %d after appending past the cut, want %d", got, want)
			}
			if hs, _, _ := r2.InitialState(); hs.Commit != want {
				t.Fatalf("commit %d after appending past the cut, want %d", hs.Commit, want)
			}
		})
	}
}

// TestWALDamageIsRefusedWithTheSegmentNamed: a bad checksum in the middle
// of the log (a good record follows it), or anywhere in a segment that is
// not the last, is damage, never cut off as a torn tail.
func TestWALDamageIsRefusedWithTheSegmentNamed(t *testing.T) {
	old := walSegmentSize
	walSegmentSize = 32 << 10
	t.Cleanup(func() { walSegmentSize = old })
	cases := map[string]func(t *testing.T, path string){
		"bad checksum mid-log in the last segment": func(t *testing.T, path string) {
			seqs, _ := listSegments(path)
			seg := segmentPath(path, seqs[len(seqs)-1])
			b, _ := os.ReadFile(seg)
			// The second record after the header and hard state: others follow.
			end, _, _ := scanSegment(b, seqs[len(seqs)-1], nil, func(byte, []byte, int64) error { return nil })
			if end < 2000 {
				t.Fatalf("last segment holds only %d bytes", end)
			}
			b[end/3] ^= 0x01
			_ = os.WriteFile(seg, b, 0o600)
		},
		"last record of the log bit-flipped": func(t *testing.T, path string) {
			seqs, _ := listSegments(path)
			seg := segmentPath(path, seqs[len(seqs)-1])
			b, _ := os.ReadFile(seg)
			last := int64(-1)
			_, _, _ = scanSegment(b, seqs[len(seqs)-1], nil, func(_ byte, _ []byte, off int64) error { last = off; return nil })
			b[last+6] ^= 0x01 // in the checksum of the last record (a hard state)
			_ = os.WriteFile(seg, b, 0o600)
		},
		"last record of an older segment garbled": func(t *testing.T, path string) {
			seg, off, n := walRecordOf(t, path, nil, 10)
			b, _ := os.ReadFile(seg)
			b[off+n-1] ^= 0x01
			_ = os.WriteFile(seg, b, 0o600)
		},
		"older segment missing": func(t *testing.T, path string) {
			seqs, _ := listSegments(path)
			_ = os.Remove(segmentPath(path, seqs[1]))
		},
		"segment renamed": func(t *testing.T, path string) {
			seqs, _ := listSegments(path)
			last := seqs[len(seqs)-1]
			_ = os.Rename(segmentPath(path, last), segmentPath(path, last+1))
			_ = os.Rename(segmentPath(path, last-1), segmentPath(path, last))
		},
	}
	for name, hurt := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "raft", "raft.db")
			s, err := OpenDiskStorage(path)
			if err != nil {
				t.Fatal(err)
			}
			saveBatches(t, s, 40, 10, 200)
			_ = s.Close()
			if seqs, _ := listSegments(path); len(seqs) < 3 {
				t.Fatalf("%d segments, want several", len(seqs))
			}
			hurt(t, path)
			_, err = OpenDiskStorage(path)
			var de *DamagedError
			if !errors.As(err, &de) {
				t.Fatalf("damaged log opened (err %v)", err)
			}
			if !strings.HasPrefix(de.Path, path+".") || !strings.HasSuffix(de.Path, ".wal") || !strings.Contains(err.Error(), de.Path) {
				t.Fatalf("error does not name the segment: %v", err)
			}
			t.Log(err)
		})
	}
}

// TestWALSegmentsRotateAndCompact: the log moves to new segments as it
// grows; a snapshot drops the segments wholly before its compaction point;
// a reopen reads the same log back.
func TestWALSegmentsRotateAndCompact(t *testing.T) {
	old := walSegmentSize
	walSegmentSize = 32 << 10
	t.Cleanup(func() { walSegmentSize = old })
	path := filepath.Join(t.TempDir(), "raft", "raft.db")
	s := openTest(t, path)
	saveBatches(t, s, 60, 10, 200) // 600 entries, ~140 KiB
	before, _ := listSegments(path)
	if len(before) < 4 {
		t.Fatalf("%d segments after 140 KiB, want at least 4", len(before))
	}
	if _, err := s.CreateSnapshot(500, &raftpb.ConfState{Voters: []uint64{1}}, []byte("state"), 50); err != nil {
		t.Fatal(err)
	}
	after, _ := listSegments(path)
	if len(after) >= len(before)-1 || after[len(after)-1] != before[len(before)-1] {
		t.Fatalf("segments %v after compaction at 450, before %v", after, before)
	}
	first, _ := s.FirstIndex()
	es, err := s.Entries(first, 601, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	hs, _, _ := s.InitialState()
	_ = s.Close()
	r := openTest(t, path)
	if f, _ := r.FirstIndex(); f != first || f != 451 {
		t.Fatalf("first index %d after reopen, want %d (451)", f, first)
	}
	got, err := r.Entries(first, 601, 1<<30)
	if err != nil || !reflect.DeepEqual(got, es) {
		t.Fatalf("entries after reopen differ (%v)", err)
	}
	if h, _, _ := r.InitialState(); !reflect.DeepEqual(h, hs) {
		t.Fatalf("hard state %+v after reopen, want %+v", h, hs)
	}
}

// TestWALReceivedSnapshotResetsTheLog: a snapshot from the leader replaces
// the log, across a reopen; and if the crash came after the snapshot was
// saved but before the log recorded it, the stale entries are dropped.
func TestWALReceivedSnapshotResetsTheLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft", "raft.db")
	s, err := OpenDiskStorage(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(raftpb.HardState{Term: 1, Commit: 5}, ents(1, 20, 1), raftpb.Snapshot{}, true); err != nil {
		t.Fatal(err)
	}
	in := raftpb.Snapshot{Data: []byte("leader"), Metadata: raftpb.SnapshotMetadata{Index: 50, Term: 3, ConfState: raftpb.ConfState{Voters: []uint64{1, 2}}}}
	if err := s.Save(raftpb.HardState{Term: 3, Commit: 50}, nil, in, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(raftpb.HardState{Term: 3, Commit: 52}, ents(51, 52, 3), raftpb.Snapshot{}, true); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	r := openTest(t, path)
	if f, _ := r.FirstIndex(); f != 51 {
		t.Fatalf("first index %d, want 51", f)
	}
	if l, _ := r.LastIndex(); l != 52 {
		t.Fatalf("last index %d, want 52", l)
	}
	_ = r.Close()

	// The crash between the snapshot's transaction and the log's append.
	path2 := filepath.Join(t.TempDir(), "raft", "raft.db")
	s2, err := OpenDiskStorage(path2)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Save(raftpb.HardState{Term: 1, Commit: 5}, ents(1, 20, 1), raftpb.Snapshot{}, true); err != nil {
		t.Fatal(err)
	}
	in.Metadata.Index = 10 // inside the old log, with another term
	if err := s2.db.Update(func(tx *bolt.Tx) error { return writeSnapshot(tx, in, nil) }); err != nil {
		t.Fatal(err)
	}
	_ = s2.Close()
	r2 := openTest(t, path2)
	if f, _ := r2.FirstIndex(); f != 11 {
		t.Fatalf("first index %d, want 11", f)
	}
	if l, _ := r2.LastIndex(); l != 10 {
		t.Fatalf("last index %d, want 10: the stale entries after the snapshot must go", l)
	}
	if hs, _, _ := r2.InitialState(); hs.Commit != 10 {
		t.Fatalf("commit %d, want the snapshot's 10", hs.Commit)
	}
}

// TestMigrateSchema2Fixtures: raft logs written by the release before the
// log segments (testdata/schema2, in clear and encrypted with testKey)
// open, move to schema 3 and read back whole.
func TestMigrateSchema2Fixtures(t *testing.T) {
	for _, name := range []string{"schema2-plain.db", "schema2-encrypted.db"} {
		t.Run(name, func(t *testing.T) {
			var key []byte
			if strings.Contains(name, "encrypted") {
				key = testKey
			}
			path := copyFixture(t, name)
			s := openKeyed(t, path, key)
			checkFixture(t, s)
			_ = s.Close()
			if v, n := schemaOf(t, path); v != 3 || n != 0 {
				t.Fatalf("schema %d with %d entries in bbolt after migration, want 3 and none", v, n)
			}
			if key != nil && fileHolds(t, path, "fixture") {
				t.Fatal("the migration wrote records in clear")
			}
			s = openKeyed(t, path, key)
			checkFixture(t, s)
			_ = s.Close()
		})
	}
}

func copyFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "schema2", name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "raft", "raft.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func openKeyed(t *testing.T, path string, key []byte) *DiskStorage {
	t.Helper()
	var s *DiskStorage
	var err error
	if key != nil {
		s, err = OpenEncryptedDiskStorage(path, key)
	} else {
		s, err = OpenDiskStorage(path)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkFixture checks what testdata/schema2 holds: entries 1..40 of term 1
// ("fixture-entry-NNNN"), a snapshot at 30 keeping 5, raft ID 7, entry 41
// of term 2 and hard state {2, 1, 40}.
func checkFixture(t *testing.T, s *DiskStorage) {
	t.Helper()
	if s.RaftID() != 7 {
		t.Fatalf("raft ID %d", s.RaftID())
	}
	if hs, _, _ := s.InitialState(); hs.Term != 2 || hs.Vote != 1 || hs.Commit != 40 {
		t.Fatalf("hard state %+v", hs)
	}
	if f, _ := s.FirstIndex(); f != 26 {
		t.Fatalf("first index %d, want 26", f)
	}
	es, err := s.Entries(26, 42, 1<<30)
	if err != nil || len(es) != 16 || string(es[0].Data) != "fixture-entry-0026" || string(es[15].Data) != "fixture-late" || es[15].Term != 2 {
		t.Fatalf("entries 26..41: %d, %v", len(es), err)
	}
	snap, _ := s.Snapshot()
	if snap.Metadata.Index != 30 || !bytes.HasPrefix(snap.Data, []byte("fixture-snapshot ")) {
		t.Fatalf("snapshot at %d", snap.Metadata.Index)
	}
	// It takes writes.
	if err := s.Save(raftpb.HardState{Term: 2, Vote: 1, Commit: 41}, []raftpb.Entry{{Index: 42, Term: 2}}, raftpb.Snapshot{}, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(raftpb.HardState{Term: 2, Vote: 1, Commit: 40}, []raftpb.Entry{{Index: 42, Term: 2}}, raftpb.Snapshot{}, true); err != nil {
		t.Fatal(err)
	}
}

// TestMigrationCrashPoints: a crash at any point of the 2 -> 3 migration
// leaves a raft log that opens with everything in it: before the segments
// are complete (a partial segment, a temporary file), after they are
// fsynced but before the schema bump commits, and after it.
func TestMigrationCrashPoints(t *testing.T) {
	errCrash := errors.New("simulated crash")
	for _, point := range []string{"partial segment", "temporary segment", "segments written", "records moved"} {
		t.Run(point, func(t *testing.T) {
			path := copyFixture(t, "schema2-encrypted.db")
			switch point {
			case "partial segment":
				if err := os.WriteFile(segmentPath(path, 1), []byte("\x00\x00\x00\x40half a record"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(segmentPath(path, 2), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			case "temporary segment":
				if err := os.WriteFile(segmentPath(path, 1)+".tmp", []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			default:
				migrateHook = func(p string) error {
					if p == point {
						return errCrash
					}
					return nil
				}
				_, err := OpenEncryptedDiskStorage(path, testKey)
				migrateHook = nil
				if err == nil || !strings.Contains(err.Error(), errCrash.Error()) {
					t.Fatalf("open with a crash at %q: %v", point, err)
				}
				if v, n := schemaOf(t, path); v != 2 || n == 0 {
					t.Fatalf("schema %d with %d entries in bbolt after the crash, want 2 with its entries", v, n)
				}
				if seqs, _ := listSegments(path); len(seqs) == 0 {
					t.Fatal("positive control: the crashed migration left no segment")
				}
			}
			s := openKeyed(t, path, testKey)
			checkFixture(t, s)
			_ = s.Close()
			if v, n := schemaOf(t, path); v != 3 || n != 0 {
				t.Fatalf("schema %d with %d entries in bbolt, want 3 and none", v, n)
			}
			if _, err := os.Stat(segmentPath(path, 1) + ".tmp"); !os.IsNotExist(err) {
				t.Fatalf("temporary segment left behind (%v)", err)
			}
			s = openKeyed(t, path, testKey)
			checkFixture(t, s)
			_ = s.Close()
		})
	}
}

// FuzzWALSegment: a log segment with arbitrary bytes opens or is refused
// with a *DamagedError naming it, never crashes; a log that opens takes
// appends and reads them back.
func FuzzWALSegment(f *testing.F) {
	dir := f.TempDir()
	p := filepath.Join(dir, "seed.db")
	s, err := OpenDiskStorage(p)
	if err != nil {
		f.Fatal(err)
	}
	_ = s.Save(raftpb.HardState{Term: 1, Commit: 2}, ents(1, 3, 1), raftpb.Snapshot{}, true)
	_ = s.Save(raftpb.HardState{Term: 2, Commit: 3}, ents(3, 4, 2), raftpb.Snapshot{}, true)
	_ = s.Close()
	seed, _ := os.ReadFile(segmentPath(p, 1))
	end := bytes.LastIndexFunc(seed, func(r rune) bool { return r != 0 }) + 1
	f.Add(seed[:end+8], uint16(40), byte(1))
	f.Add(seed[:end-3], uint16(0), byte(0))
	f.Fuzz(func(t *testing.T, seg []byte, at uint16, flip byte) {
		if len(seg) > 1<<20 {
			return
		}
		b := append([]byte(nil), seg...)
		if int(at) < len(b) {
			b[at] ^= flip
		}
		w, st, err := openWAL(filepath.Join(t.TempDir(), "raft.db"), nil) // no segment: empty
		if err != nil || len(st.ents) != 0 || w.f != nil {
			t.Fatalf("empty log: %v %d", err, len(st.ents))
		}
		base := filepath.Join(t.TempDir(), "raft.db")
		if err := os.WriteFile(segmentPath(base, 1), b, 0o600); err != nil {
			t.Fatal(err)
		}
		w, st, err = openWAL(base, nil)
		if err != nil {
			var de *DamagedError
			if !errors.As(err, &de) || de.Path != segmentPath(base, 1) {
				t.Fatalf("refused without naming the segment: %v", err)
			}
			return
		}
		defer w.close()
		next := uint64(1)
		if n := len(st.ents); n > 0 {
			next = st.ents[n-1].Index + 1
		}
		e := raftpb.Entry{Index: next, Term: 9, Data: []byte("after")}
		data, _ := e.Marshal()
		if err := w.append([]walRecord{{typ: walEntry, data: data, index: next}}, false); err != nil {
			t.Fatal(err)
		}
		_ = w.close()
		_, st2, err := openWAL(base, nil)
		if err != nil {
			t.Fatalf("a log that opened and took an append does not open again: %v", err)
		}
		if n := len(st2.ents); n == 0 || !reflect.DeepEqual(st2.ents[n-1], e) || n != len(st.ents)+1 {
			t.Fatalf("append not read back: %d entries, had %d", n, len(st.ents))
		}
	})
}

// TestRemovedBoltFileLeavesAnEmptyLog: log segments without their bbolt
// file (removed by hand) do not come back into a new log: they are
// renamed out of the way and the log is empty, as before segments existed.
func TestRemovedBoltFileLeavesAnEmptyLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft", "raft.db")
	s, err := OpenDiskStorage(path)
	if err != nil {
		t.Fatal(err)
	}
	saveBatches(t, s, 2, 5, 10)
	_ = s.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	r := openTest(t, path)
	if !r.IsEmpty() {
		t.Fatal("the log is not empty without its bbolt file")
	}
	if _, err := os.Stat(segmentPath(path, 1) + ".orphaned"); err != nil {
		t.Fatalf("the orphaned segment was not kept aside: %v", err)
	}
	saveBatches(t, r, 1, 3, 10)
	_ = r.Close()
	r2 := openTest(t, path)
	if li, _ := r2.LastIndex(); li != 3 {
		t.Fatalf("last index %d, want 3", li)
	}
}

// TestEncryptSchema2WithLeftoverSegments: a schema 2 file in clear whose
// migration crashed (segments in clear beside it) opened with a key is
// encrypted, migrated, and keeps nothing in clear; a schema 3 log in clear
// opened with a key is refused, naming the file, and left as it was.
func TestEncryptSchema2WithLeftoverSegments(t *testing.T) {
	path := copyFixture(t, "schema2-plain.db")
	migrateHook = func(p string) error {
		if p == "segments written" {
			return errors.New("simulated crash")
		}
		return nil
	}
	_, err := OpenDiskStorage(path)
	migrateHook = nil
	if err == nil || !fileHolds(t, path, "fixture-entry") {
		t.Fatalf("positive control: the crashed migration left no segment in clear (%v)", err)
	}
	s := openKeyed(t, path, testKey)
	checkFixture(t, s)
	_ = s.Close()
	if fileHolds(t, path, "fixture") {
		t.Fatal("records in clear after encrypting and migrating")
	}

	plain := copyFixture(t, "schema2-plain.db")
	s = openKeyed(t, plain, nil) // migrated to schema 3 in clear
	_ = s.Close()
	_, err = OpenEncryptedDiskStorage(plain, testKey)
	if err == nil || !strings.Contains(err.Error(), plain) || !strings.Contains(err.Error(), "in clear") {
		t.Fatalf("schema 3 log in clear opened with a key: %v", err)
	}
	s = openKeyed(t, plain, nil)
	checkFixture(t, s)
	_ = s.Close()
}
