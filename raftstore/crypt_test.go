package raftstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/raft/v3/raftpb"
)

var testKey = bytes.Repeat([]byte{0x42}, 32)

// fillLog writes entries 1..40 carrying marker, a snapshot at 30 whose
// data carries marker, and a raft ID.
func fillLog(t *testing.T, s *DiskStorage, marker string) {
	t.Helper()
	var es []raftpb.Entry
	for i := uint64(1); i <= 40; i++ {
		es = append(es, raftpb.Entry{Index: i, Term: 1, Data: []byte(marker + "-entry-" + leftPad(i))})
	}
	if err := s.Save(raftpb.HardState{Term: 1, Commit: 40, Vote: 1}, es, raftpb.Snapshot{}, true); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte(marker+"-snapshot "), 200_000) // > 1 chunk
	if _, err := s.CreateSnapshot(30, &raftpb.ConfState{Voters: []uint64{1}}, data, 5); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRaftID(7); err != nil {
		t.Fatal(err)
	}
}

// checkLog verifies what fillLog wrote.
func checkLog(t *testing.T, s *DiskStorage, marker string) {
	t.Helper()
	if s.RaftID() != 7 {
		t.Fatalf("raft ID %d, want 7", s.RaftID())
	}
	hs, _, _ := s.InitialState()
	if hs.Commit != 40 || hs.Term != 1 || hs.Vote != 1 {
		t.Fatalf("hard state %+v", hs)
	}
	got, err := s.Entries(26, 41, 1<<30)
	if err != nil || len(got) != 15 || string(got[14].Data) != marker+"-entry-0040" {
		t.Fatalf("entries 26..40: %d entries, %v", len(got), err)
	}
	snap, _ := s.Snapshot()
	if snap.Metadata.Index != 30 || !bytes.HasPrefix(snap.Data, []byte(marker+"-snapshot ")) || len(snap.Data) != 200_000*len(marker+"-snapshot ") {
		t.Fatalf("snapshot at %d of %d bytes", snap.Metadata.Index, len(snap.Data))
	}
}

// fileHolds reports whether the raft log at path (the bbolt file and its
// log segments) holds s.
func fileHolds(t *testing.T, path, s string) bool {
	t.Helper()
	seqs, err := listSegments(path)
	if err != nil {
		t.Fatal(err)
	}
	files := []string{path}
	for _, seq := range seqs {
		files = append(files, segmentPath(path, seq))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return false
}

// TestEncryptedStorage: with a key, neither entries, snapshot nor anything
// else is in clear in the file (the same log written in clear shows the
// marker: the scan works); the log reads back whole; another key and no
// key are refused with errors naming the file.
func TestEncryptedStorage(t *testing.T) {
	dir := t.TempDir()
	const marker = "mk-secret-label-31337"

	plain := filepath.Join(dir, "plain", "raft.db")
	ps, err := OpenDiskStorage(plain)
	if err != nil {
		t.Fatal(err)
	}
	fillLog(t, ps, marker)
	_ = ps.Close()
	if !fileHolds(t, plain, marker+"-entry") || !fileHolds(t, plain, marker+"-snapshot") {
		t.Fatal("positive control: the marker is not found in the plaintext file")
	}

	path := filepath.Join(dir, "enc", "raft.db")
	s, err := OpenEncryptedDiskStorage(path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	fillLog(t, s, marker)
	// More writes after the snapshot: conflicting suffix, new hard state.
	if err := s.Save(raftpb.HardState{Term: 2, Commit: 40, Vote: 1}, []raftpb.Entry{{Index: 41, Term: 2, Data: []byte(marker + "-late")}}, raftpb.Snapshot{}, true); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if fileHolds(t, path, marker) {
		t.Fatal("the marker is in clear in the encrypted raft log file")
	}

	s, err = OpenEncryptedDiskStorage(path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if li, _ := s.LastIndex(); li != 41 {
		t.Fatalf("last index %d, want 41", li)
	}
	_ = s.Save(raftpb.HardState{Term: 2, Commit: 41, Vote: 1}, nil, raftpb.Snapshot{}, true)
	_ = s.Close()

	_, err = OpenEncryptedDiskStorage(path, bytes.Repeat([]byte{1}, 32))
	var de *DamagedError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "data key") {
		t.Fatalf("another key: %v; want a refusal naming the file and the data key", err)
	}
	if _, err := OpenDiskStorage(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "encrypted") {
		t.Fatalf("no key: %v; want a refusal saying the file is encrypted", err)
	}
	if _, err := OpenEncryptedDiskStorage(path, []byte("short")); err == nil {
		t.Fatal("a short key was accepted")
	}
	// Still intact after the refusals.
	s, err = OpenEncryptedDiskStorage(path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if hs, _, _ := s.InitialState(); hs.Commit != 41 {
		t.Fatalf("commit %d after reopen, want 41", hs.Commit)
	}
}

// setSchema rewrites meta/schema (to fake a file of an older release).
func setSchema(t *testing.T, path string, v uint32) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint32(nil, v))
	}); err != nil {
		t.Fatal(err)
	}
}

// TestEncryptPlaintextFile: a raft log of a release before encryption
// (schema 1, records in clear) is encrypted at its first open with a key:
// every record survives, nothing stays in clear, no copy is left behind;
// a copy left by a crash in the middle is discarded and the file is intact.
func TestEncryptPlaintextFile(t *testing.T) {
	const marker = "mk-before-encryption-4711"
	path := filepath.Join(t.TempDir(), "raft", "raft.db")
	s, err := OpenDiskStorage(path)
	if err != nil {
		t.Fatal(err)
	}
	fillLog(t, s, marker)
	_ = s.Close()
	downgrade(t, path, nil, 1)
	if !fileHolds(t, path, marker) {
		t.Fatal("positive control: marker not in the plaintext file")
	}

	// A crash while encrypting left a partial copy.
	if err := os.WriteFile(path+encryptingSuffix, []byte("partial copy"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = OpenEncryptedDiskStorage(path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, marker)
	_ = s.Close()
	if fileHolds(t, path, marker) {
		t.Fatal("the marker is still in clear after encryption")
	}
	if _, err := os.Stat(path + encryptingSuffix); !os.IsNotExist(err) {
		t.Fatalf("the encrypting copy is left behind (%v)", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keySchema); binary.BigEndian.Uint32(v) != schemaVersion {
			t.Errorf("schema %d after encryption, want %d", binary.BigEndian.Uint32(v), schemaVersion)
		}
		return nil
	})
	_ = db.Close()
	s, err = OpenEncryptedDiskStorage(path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, marker)
	_ = s.Close()

	// A damaged plaintext file is refused, not encrypted.
	bad := filepath.Join(t.TempDir(), "raft.db")
	s, err = OpenDiskStorage(bad)
	if err != nil {
		t.Fatal(err)
	}
	fillLog(t, s, marker)
	_ = s.Close()
	downgrade(t, bad, nil, 2)
	corrupt(t, bad, bucketEntries, 33, false)
	before, _ := os.ReadFile(bad)
	_, err = OpenEncryptedDiskStorage(bad, testKey)
	var de *DamagedError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("damaged plaintext file: %v; want a DamagedError naming it", err)
	}
	if after, _ := os.ReadFile(bad); !bytes.Equal(before, after) {
		t.Fatal("a damaged file was changed by the refused open")
	}
}

// corrupt flips a byte of entry idx's stored value (with fixCRC, the
// checksum is recomputed so only the decryption can tell).
func corrupt(t *testing.T, path string, bucket []byte, idx uint64, fixCRC bool) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		k := binary.BigEndian.AppendUint64(nil, idx)
		v := append([]byte(nil), tx.Bucket(bucket).Get(k)...)
		if len(v) < 10 {
			return errors.New("record not found")
		}
		v[len(v)-3] ^= 0x20
		if fixCRC {
			binary.BigEndian.PutUint32(v, crc32.Checksum(v[4:], crcTable))
		}
		return tx.Bucket(bucket).Put(k, v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestEncryptedDamage: a garbled ciphertext (caught by the checksum, or
// only by the cipher), a record moved to another index, and overwritten
// pages are each refused with a DamagedError naming the file.
func TestEncryptedDamage(t *testing.T) {
	damage := map[string]func(t *testing.T, p string){
		"entry ciphertext flipped": func(t *testing.T, p string) { corruptWAL(t, p, testKey, 33, false) },
		"entry ciphertext forged":  func(t *testing.T, p string) { corruptWAL(t, p, testKey, 33, true) },
		"snapshot chunk forged":    func(t *testing.T, p string) { corrupt(t, p, bucketSnapshot, 1, true) },
		"entry moved to another index": func(t *testing.T, p string) {
			seg, off34, n34 := walRecordOf(t, p, testKey, 34)
			_, off35, n35 := walRecordOf(t, p, testKey, 35)
			if n34 != n35 {
				t.Fatalf("records of 34 and 35 differ in length (%d, %d)", n34, n35)
			}
			b, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			copy(b[off35:off35+n35], b[off34:off34+n34])
			if err := os.WriteFile(seg, b, 0o600); err != nil {
				t.Fatal(err)
			}
		},
		"meta page overwritten": func(t *testing.T, p string) {
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(bytes.Repeat([]byte{0xa5}, 8192), 0); err != nil {
				t.Fatal(err)
			}
		},
		"pages overwritten": func(t *testing.T, p string) {
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			if _, err := f.WriteAt(bytes.Repeat([]byte{0xa5}, 8192), st.Size()/2); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, hurt := range damage {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "raft", "raft.db")
			s, err := OpenEncryptedDiskStorage(path, testKey)
			if err != nil {
				t.Fatal(err)
			}
			fillLog(t, s, "x")
			_ = s.Close()
			hurt(t, path)
			_, err = OpenEncryptedDiskStorage(path, testKey)
			var de *DamagedError
			if !errors.As(err, &de) {
				t.Fatalf("damaged file opened (err %v)", err)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "To recover") {
				t.Fatalf("error does not name the file and the recovery: %v", err)
			}
			t.Log(de.Detail)
		})
	}
}

// BenchmarkStorageSave: one Ready's worth (16 entries of 512 bytes and the
// hard state, fsynced) in clear and encrypted.
func BenchmarkStorageSave(b *testing.B) {
	for _, enc := range []bool{false, true} {
		name := "plain"
		if enc {
			name = "encrypted"
		}
		b.Run(name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "raft.db")
			var s *DiskStorage
			var err error
			if enc {
				s, err = OpenEncryptedDiskStorage(path, testKey)
			} else {
				s, err = OpenDiskStorage(path)
			}
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			data := bytes.Repeat([]byte{'d'}, 512)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				es := make([]raftpb.Entry, 16)
				for j := range es {
					es[j] = raftpb.Entry{Index: uint64(i*16 + j + 1), Term: 1, Data: data}
				}
				if err := s.Save(raftpb.HardState{Term: 1, Commit: uint64(i * 16)}, es, raftpb.Snapshot{}, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRecordSeal: sealing one 512-byte record, CPU only.
func BenchmarkRecordSeal(b *testing.B) {
	enc, _ := newRecordCipher(testKey)
	k := binary.BigEndian.AppendUint64(nil, 1)
	data := bytes.Repeat([]byte{'d'}, 512)
	for name, rc := range map[string]*recordCipher{"plain": nil, "encrypted": enc} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for i := 0; i < b.N; i++ {
				v := rc.seal(bucketEntries, k, data)
				if _, err := rc.unseal(bucketEntries, k, v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
