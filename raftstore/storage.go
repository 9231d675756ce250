package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-project/shoal/internal/boltcheck"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Bucket and key names of the raft log file; the layout is drawn in doc.go.
var (
	bucketMeta     = []byte("meta")
	bucketEntries  = []byte("entries")
	bucketSnapshot = []byte("snapshot")

	keySchema    = []byte("schema")
	keyHardState = []byte("hardstate")
	keySnapMeta  = []byte("snapshot-meta")
	keyRaftID    = []byte("raft-id")
)

// schemaVersion is the layout version written in meta/schema. migrations[i]
// upgrades a file from version i+1 to i+2.
const schemaVersion uint32 = 2

var migrations = []func(*bolt.Tx) error{
	// 1 -> 2: version 2 may encrypt records (meta/cipher, meta/key-check);
	// a version 1 file is a version 2 file in clear. Encrypting one is a
	// rewrite of the whole file (encryptInPlace), never done in place.
	func(*bolt.Tx) error { return nil },
}

// snapshotChunk is the size of the values the snapshot data is cut into.
const snapshotChunk = 1 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// DiskStorage is raft's Storage kept in a bbolt file. Reads are served from
// an in-memory copy of the uncompacted log (a raft.MemoryStorage); every
// change is first written to the file in one fsynced transaction, then to
// memory, so what raft reads is always durable.
//
// DiskStorage is safe for concurrent use: the raft node goroutine reads it
// while the Ready loop writes it.
type DiskStorage struct {
	path string
	db   *bolt.DB
	mem  *raft.MemoryStorage
	rc   *recordCipher // nil: records in clear

	mu     sync.Mutex // serializes writers; mem has its own lock for readers
	raftID uint64
}

var _ raft.Storage = (*DiskStorage)(nil)

// DamagedError reports a raft log file that cannot be trusted. Its message
// names the file and says how to recover.
type DamagedError struct {
	Path   string
	Detail string
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("the raft log file %s is damaged (%s). shoald cannot start from it: it would rejoin "+
		"with a wrong or empty state under its old identity. To recover, restore the data directory %s from a "+
		"backup; or, if other managers are healthy, remove this node (`shoal node rm --force <id>` on a healthy "+
		"manager), move the data directory away and join again with a fresh one; for a single-manager cluster "+
		"without a backup, move the data directory away and run `shoal swarm init` again",
		e.Path, e.Detail, filepath.Dir(filepath.Dir(e.Path)))
}

// OpenDiskStorage opens (or creates) the raft log file at path, checks every
// record in it and loads the log into memory. A file that fails any check
// yields a *DamagedError and is left untouched. Records are kept in clear;
// an encrypted file is refused (OpenEncryptedDiskStorage opens it).
func OpenDiskStorage(path string) (*DiskStorage, error) {
	return openDiskStorage(path, nil)
}

// OpenEncryptedDiskStorage is OpenDiskStorage for a file whose records are
// encrypted with key (32 bytes; see crypt.go). A file with records in clear
// (from a release without encryption) is first rewritten encrypted, by a
// copy renamed over it; a file encrypted with another key is refused.
func OpenEncryptedDiskStorage(path string, key []byte) (*DiskStorage, error) {
	rc, err := newRecordCipher(key)
	if err != nil {
		return nil, err
	}
	return openDiskStorage(path, rc)
}

func openDiskStorage(path string, rc *recordCipher) (*DiskStorage, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create raft directory: %w", err)
	}
	// A copy left by a crash while encrypting: the file itself is intact.
	if err := os.Remove(path + encryptingSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := boltcheck.Check(path); err != nil {
		return nil, &DamagedError{Path: path, Detail: err.Error()}
	}
	if rc != nil {
		if err := guard(path, func() error { return encryptInPlace(path, rc) }); err != nil {
			return nil, err
		}
	}
	s := &DiskStorage{path: path, mem: raft.NewMemoryStorage(), rc: rc}
	if err := guard(path, func() error { return s.open() }); err != nil {
		if s.db != nil {
			_ = s.db.Close()
		}
		return nil, err
	}
	return s, nil
}

// guard runs fn, turning a panic or a memory fault (bbolt reads the file
// through mmap, so a truncated or garbled file can fault) into a DamagedError.
func guard(path string, fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = &DamagedError{Path: path, Detail: fmt.Sprintf("reading it failed: %v", r)}
		}
	}()
	return fn()
}

func (s *DiskStorage) open() error {
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: 5 * time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return fmt.Errorf("open %s: another process holds it (is another shoald running with this --data-dir?)", s.path)
		}
		if df := asDiskFault(s.path, err); df != nil && df.Errno != syscall.EIO {
			df.AtStart = true // a new file could not be written
			return df
		}
		return &DamagedError{Path: s.path, Detail: err.Error()}
	}
	s.db = db
	if err := s.ensureSchema(db); err != nil {
		return err
	}
	// The cipher check only reads, but for a new empty log, which it marks
	// encrypted: opening must not write otherwise (a full disk would then
	// look like a damaged file).
	err = db.View(s.checkCipher)
	if errors.Is(err, errCipherInit) {
		err = db.Update(s.checkCipher)
		if df := asDiskFault(s.path, err); df != nil {
			df.AtStart = true
			return df
		}
	}
	var oe *openError
	if errors.As(err, &oe) {
		return oe
	}
	if err != nil {
		return &DamagedError{Path: s.path, Detail: err.Error()}
	}
	return db.View(s.load)
}

func initSchema(tx *bolt.Tx) error {
	for _, b := range [][]byte{bucketMeta, bucketEntries, bucketSnapshot} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	v := meta.Get(keySchema)
	if v == nil {
		return meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, schemaVersion))
	}
	if len(v) != 4 {
		return fmt.Errorf("schema version record has %d bytes", len(v))
	}
	have := binary.BigEndian.Uint32(v)
	if have > schemaVersion {
		return fmt.Errorf("file has schema version %d; this shoald understands up to %d (was it written by a newer release?)", have, schemaVersion)
	}
	for ; have < schemaVersion; have++ {
		if err := migrations[have-1](tx); err != nil {
			return fmt.Errorf("migrate schema %d -> %d: %w", have, have+1, err)
		}
	}
	return meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, schemaVersion))
}

// load checks every record and fills the in-memory log.
func (s *DiskStorage) load(tx *bolt.Tx) error {
	damaged := func(format string, a ...any) error {
		return &DamagedError{Path: s.path, Detail: fmt.Sprintf(format, a...)}
	}
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get(keyRaftID); v != nil {
		b, err := s.rc.unseal(bucketMeta, keyRaftID, v)
		if err != nil || len(b) != 8 {
			return damaged("raft ID record: bad checksum or length")
		}
		s.raftID = binary.BigEndian.Uint64(b)
	}
	snap, err := readSnapshot(tx, s.rc)
	if err != nil {
		return damaged("snapshot: %v", err)
	}
	var hs raftpb.HardState
	if v := meta.Get(keyHardState); v != nil {
		b, err := s.rc.unseal(bucketMeta, keyHardState, v)
		if err != nil {
			return damaged("hard state: %v", err)
		}
		if err := hs.Unmarshal(b); err != nil {
			return damaged("hard state: %v", err)
		}
	}
	// Entries may start before the snapshot: those kept for slow followers.
	var ents []raftpb.Entry
	var next uint64
	c := tx.Bucket(bucketEntries).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 8 {
			return damaged("entry key of %d bytes", len(k))
		}
		idx := binary.BigEndian.Uint64(k)
		if next != 0 && idx != next {
			return damaged("entries jump from index %d to %d", next-1, idx)
		}
		b, err := s.rc.unseal(bucketEntries, k, v)
		if err != nil {
			return damaged("entry %d: %v", idx, err)
		}
		var e raftpb.Entry
		if err := e.Unmarshal(b); err != nil || e.Index != idx {
			return damaged("entry %d does not decode", idx)
		}
		ents = append(ents, e)
		next = idx + 1
	}
	si := snap.Metadata.Index
	switch {
	case len(ents) == 0:
		next = si + 1
		if !raft.IsEmptySnap(snap) {
			if err := s.mem.ApplySnapshot(snap); err != nil {
				return damaged("snapshot: %v", err)
			}
		}
	case ents[0].Index > si+1:
		return damaged("entries start at %d but the snapshot ends at %d", ents[0].Index, si)
	case ents[0].Index == si+1 || (raft.IsEmptySnap(snap) && ents[0].Index == 1):
		if !raft.IsEmptySnap(snap) {
			if err := s.mem.ApplySnapshot(snap); err != nil {
				return damaged("snapshot: %v", err)
			}
		}
		if err := s.mem.Append(ents); err != nil {
			return damaged("entries: %v", err)
		}
	default:
		// The first entry is the compaction point: make it the log's dummy
		// entry, append the rest, then record the real snapshot on top.
		if next <= si {
			return damaged("entries end at %d, before the snapshot at %d", next-1, si)
		}
		if t := ents[si-ents[0].Index].Term; t != snap.Metadata.Term {
			return damaged("entry %d has term %d but the snapshot says %d", si, t, snap.Metadata.Term)
		}
		base := raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{Index: ents[0].Index, Term: ents[0].Term, ConfState: snap.Metadata.ConfState}}
		if err := s.mem.ApplySnapshot(base); err != nil {
			return damaged("entries: %v", err)
		}
		if err := s.mem.Append(ents[1:]); err != nil {
			return damaged("entries: %v", err)
		}
		if _, err := s.mem.CreateSnapshot(si, &snap.Metadata.ConfState, snap.Data); err != nil {
			return damaged("snapshot: %v", err)
		}
	}
	last := next - 1
	if hs.Commit > last {
		return damaged("commit index %d is past the last entry %d (entries are missing)", hs.Commit, last)
	}
	if hs.Commit < snap.Metadata.Index && !raft.IsEmptyHardState(hs) {
		return damaged("commit index %d is before the snapshot at %d", hs.Commit, snap.Metadata.Index)
	}
	if !raft.IsEmptyHardState(hs) {
		if err := s.mem.SetHardState(hs); err != nil {
			return damaged("hard state: %v", err)
		}
	}
	return nil
}

func readSnapshot(tx *bolt.Tx, rc *recordCipher) (raftpb.Snapshot, error) {
	var snap raftpb.Snapshot
	v := tx.Bucket(bucketMeta).Get(keySnapMeta)
	if v == nil {
		return snap, nil
	}
	b, err := rc.unseal(bucketMeta, keySnapMeta, v)
	if err != nil {
		return snap, err
	}
	var hdr snapshotHeader
	if err := hdr.decode(b); err != nil {
		return snap, err
	}
	if err := snap.Metadata.Unmarshal(hdr.meta); err != nil {
		return snap, err
	}
	data := make([]byte, 0, hdr.size)
	bk := tx.Bucket(bucketSnapshot)
	for i := uint64(0); uint64(len(data)) < hdr.size; i++ {
		k := binary.BigEndian.AppendUint64(nil, i)
		v := bk.Get(k)
		if v == nil {
			return snap, fmt.Errorf("data chunk %d of %d bytes is missing", i, hdr.size)
		}
		chunk, err := rc.unseal(bucketSnapshot, k, v)
		if err != nil {
			return snap, fmt.Errorf("data chunk %d: %w", i, err)
		}
		data = append(data, chunk...)
	}
	if uint64(len(data)) != hdr.size {
		return snap, fmt.Errorf("data is %d bytes, header says %d", len(data), hdr.size)
	}
	snap.Data = data
	return snap, nil
}

// snapshotHeader is the snapshot's metadata plus the size of its data.
type snapshotHeader struct {
	size uint64
	meta []byte
}

func (h snapshotHeader) encode() []byte {
	return append(binary.BigEndian.AppendUint64(nil, h.size), h.meta...)
}

func (h *snapshotHeader) decode(b []byte) error {
	if len(b) < 8 {
		return errors.New("snapshot header too short")
	}
	h.size = binary.BigEndian.Uint64(b)
	h.meta = b[8:]
	return nil
}

// Path is the file the storage lives in.
func (s *DiskStorage) Path() string { return s.path }

// RaftID returns the raft ID recorded in the file, 0 if none.
func (s *DiskStorage) RaftID() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raftID
}

// SetRaftID records this member's raft ID.
func (s *DiskStorage) SetRaftID(id uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyRaftID, s.rc.seal(bucketMeta, keyRaftID, binary.BigEndian.AppendUint64(nil, id)))
	})
	if err == nil {
		s.raftID = id
	}
	return err
}

// IsEmpty reports whether the log holds nothing: no hard state, no entries,
// no snapshot. A node with an empty log must be bootstrapped or join.
func (s *DiskStorage) IsEmpty() bool {
	hs, _, _ := s.mem.InitialState()
	last, _ := s.mem.LastIndex()
	return raft.IsEmptyHardState(hs) && last == 0
}

// Save persists one Ready's worth of state in a single transaction, then
// makes it visible to raft: the snapshot first, then entries (replacing any
// conflicting suffix), then the hard state. The transaction is fsynced
// unless mustSync is false, which raft allows when only the commit index
// moved (it can be learned again from the leader).
func (s *DiskStorage) Save(hs raftpb.HardState, ents []raftpb.Entry, snap raftpb.Snapshot, mustSync bool) error {
	if raft.IsEmptyHardState(hs) && len(ents) == 0 && raft.IsEmptySnap(snap) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !mustSync && len(ents) == 0 && raft.IsEmptySnap(snap) {
		s.db.NoSync = true
		defer func() { s.db.NoSync = false }()
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if !raft.IsEmptySnap(snap) {
			if err := writeSnapshot(tx, snap, s.rc); err != nil {
				return err
			}
			if err := deleteEntries(tx, 0, snap.Metadata.Index+1); err != nil {
				return err
			}
		}
		if len(ents) > 0 {
			b := tx.Bucket(bucketEntries)
			// Entries at and after the first new index are replaced.
			if err := deleteEntries(tx, ents[0].Index, 0); err != nil {
				return err
			}
			for i := range ents {
				data, err := ents[i].Marshal()
				if err != nil {
					return err
				}
				k := binary.BigEndian.AppendUint64(nil, ents[i].Index)
				if err := b.Put(k, s.rc.seal(bucketEntries, k, data)); err != nil {
					return err
				}
			}
		}
		if !raft.IsEmptyHardState(hs) {
			data, err := hs.Marshal()
			if err != nil {
				return err
			}
			return tx.Bucket(bucketMeta).Put(keyHardState, s.rc.seal(bucketMeta, keyHardState, data))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("persist raft state to %s: %w", s.path, err)
	}
	if !raft.IsEmptySnap(snap) {
		if err := s.mem.ApplySnapshot(snap); err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
			return err
		}
	}
	if len(ents) > 0 {
		if err := s.mem.Append(ents); err != nil {
			return err
		}
	}
	if !raft.IsEmptyHardState(hs) {
		return s.mem.SetHardState(hs)
	}
	return nil
}

// deleteEntries removes entry keys in [from, to); to == 0 means to the end.
func deleteEntries(tx *bolt.Tx, from, to uint64) error {
	c := tx.Bucket(bucketEntries).Cursor()
	for k, _ := c.Seek(binary.BigEndian.AppendUint64(nil, from)); k != nil; k, _ = c.Seek(binary.BigEndian.AppendUint64(nil, from)) {
		idx := binary.BigEndian.Uint64(k)
		if to != 0 && idx >= to {
			return nil
		}
		if err := c.Delete(); err != nil {
			return err
		}
		from = idx + 1
	}
	return nil
}

func writeSnapshot(tx *bolt.Tx, snap raftpb.Snapshot, rc *recordCipher) error {
	meta, err := snap.Metadata.Marshal()
	if err != nil {
		return err
	}
	if err := tx.DeleteBucket(bucketSnapshot); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
		return err
	}
	bk, err := tx.CreateBucket(bucketSnapshot)
	if err != nil {
		return err
	}
	for i, off := uint64(0), 0; off < len(snap.Data); i, off = i+1, off+snapshotChunk {
		end := min(off+snapshotChunk, len(snap.Data))
		k := binary.BigEndian.AppendUint64(nil, i)
		if err := bk.Put(k, rc.seal(bucketSnapshot, k, snap.Data[off:end])); err != nil {
			return err
		}
	}
	hdr := snapshotHeader{size: uint64(len(snap.Data)), meta: meta}
	return tx.Bucket(bucketMeta).Put(keySnapMeta, rc.seal(bucketMeta, keySnapMeta, hdr.encode()))
}

// CreateSnapshot records a snapshot of the applied state at index i and
// compacts the log so that `keep` entries before i stay for slow followers.
func (s *DiskStorage) CreateSnapshot(i uint64, cs *raftpb.ConfState, data []byte, keep uint64) (raftpb.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, err := s.mem.CreateSnapshot(i, cs, data)
	if err != nil {
		return snap, err
	}
	compact := uint64(0)
	if i > keep {
		compact = i - keep
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := writeSnapshot(tx, snap, s.rc); err != nil {
			return err
		}
		if compact > 0 {
			return deleteEntries(tx, 0, compact)
		}
		return nil
	})
	if err != nil {
		return snap, fmt.Errorf("persist snapshot to %s: %w", s.path, err)
	}
	if first, _ := s.mem.FirstIndex(); compact > first {
		if err := s.mem.Compact(compact); err != nil && !errors.Is(err, raft.ErrCompacted) {
			return snap, err
		}
	}
	return snap, nil
}

// entriesWithin returns how many entries, counting back from index, a
// compaction may keep: at most keep, and no more than maxBytes of them
// (the newest first).
func (s *DiskStorage) entriesWithin(index, keep, maxBytes uint64) uint64 {
	first, _ := s.mem.FirstIndex()
	if keep == 0 || index < first {
		return 0
	}
	lo := first
	if index+1-lo > keep {
		lo = index + 1 - keep
	}
	ents, err := s.mem.Entries(lo, index+1, math.MaxUint64)
	if err != nil {
		return 0
	}
	var n, size uint64
	for i := len(ents) - 1; i >= 0; i-- {
		size += uint64(ents[i].Size())
		if size > maxBytes {
			break
		}
		n++
	}
	return n
}

// InitialState implements raft.Storage.
func (s *DiskStorage) InitialState() (raftpb.HardState, raftpb.ConfState, error) {
	return s.mem.InitialState()
}

// Entries implements raft.Storage. Unlike MemoryStorage, asking past the
// last entry returns ErrUnavailable instead of panicking.
func (s *DiskStorage) Entries(lo, hi, maxSize uint64) ([]raftpb.Entry, error) {
	if last, _ := s.mem.LastIndex(); hi > last+1 {
		if first, _ := s.mem.FirstIndex(); lo < first {
			return nil, raft.ErrCompacted
		}
		return nil, raft.ErrUnavailable
	}
	return s.mem.Entries(lo, hi, maxSize)
}

// Term implements raft.Storage.
func (s *DiskStorage) Term(i uint64) (uint64, error) { return s.mem.Term(i) }

// LastIndex implements raft.Storage.
func (s *DiskStorage) LastIndex() (uint64, error) { return s.mem.LastIndex() }

// FirstIndex implements raft.Storage.
func (s *DiskStorage) FirstIndex() (uint64, error) { return s.mem.FirstIndex() }

// Snapshot implements raft.Storage.
func (s *DiskStorage) Snapshot() (raftpb.Snapshot, error) { return s.mem.Snapshot() }

// Close closes the file.
func (s *DiskStorage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.db.Close()
}
