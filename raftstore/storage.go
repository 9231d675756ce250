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
	keyCompacted = []byte("compacted")
)

// schemaVersion is the layout version written in meta/schema. migrations[i]
// upgrades a file from version i+1 to i+2, in the transaction that bumps
// the version.
const schemaVersion uint32 = 3

var migrations = []func(*DiskStorage, *bolt.Tx) error{
	// 1 -> 2: version 2 may encrypt records (meta/cipher, meta/key-check);
	// a version 1 file is a version 2 file in clear. Encrypting one is a
	// rewrite of the whole file (encryptInPlace), never done in place.
	func(*DiskStorage, *bolt.Tx) error { return nil },
	// 2 -> 3: the entries and the hard state move to the log segments.
	(*DiskStorage).migrateToWAL,
}

// snapshotChunk is the size of the values the snapshot data is cut into.
const snapshotChunk = 1 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// DiskStorage is raft's Storage: entries and hard state in log segments
// (wal.go), snapshots and metadata in a bbolt file (doc.go draws both).
// Reads are served from an in-memory copy of the uncompacted log (a
// raft.MemoryStorage); every change is first written to disk, fsynced,
// then to memory, so what raft reads is always durable.
//
// DiskStorage is safe for concurrent use: the raft node goroutine reads it
// while the Ready loop writes it.
type DiskStorage struct {
	path string
	db   *bolt.DB
	wal  *wal // entries and hard state; nil until opened
	mem  *raft.MemoryStorage
	rc   *recordCipher // nil: records in clear

	mu     sync.Mutex // serializes writers; mem has its own lock for readers
	raftID uint64
	// snapMu serializes snapshot writes (CreateSnapshot's, and Save's of a
	// snapshot from the leader) and Close; taken before mu. CreateSnapshot
	// writes the snapshot's bytes holding snapMu only, so the Ready loop's
	// Save of entries is not held up by it.
	snapMu sync.Mutex
	// duringSnapshotWrite, when set (tests), runs inside CreateSnapshot's
	// write of the snapshot's bytes.
	duringSnapshotWrite func()
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

// OpenDiskStorage opens (or creates) the raft log file at path and its log
// segments (path.<seq>.wal), checks every record and loads the log into
// memory. A file that fails any check yields a *DamagedError and is left
// untouched (a torn last write of the log is cut off: it is no damage). Records are kept in clear;
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
		s.closeFiles()
		return nil, err
	}
	return s, nil
}

// closeFiles closes the bbolt file and the log segment, if open.
func (s *DiskStorage) closeFiles() {
	if s.db != nil {
		_ = s.db.Close()
		s.db = nil
	}
	if s.wal != nil {
		_ = s.wal.close()
		s.wal = nil
	}
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
	w, st, err := openWAL(s.path, s.rc)
	if err != nil {
		var de *DamagedError
		if errors.As(err, &de) {
			return err
		}
		if df := asDiskFault(s.path, err); df != nil && df.Errno != syscall.EIO {
			df.AtStart = true
			return df
		}
		return &DamagedError{Path: s.path, Detail: fmt.Sprintf("reading the log segments: %v", err)}
	}
	s.wal = w
	return db.View(func(tx *bolt.Tx) error { return s.load(tx, st) })
}

func (s *DiskStorage) initSchema(tx *bolt.Tx) error {
	for _, b := range [][]byte{bucketMeta, bucketEntries, bucketSnapshot} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	v := meta.Get(keySchema)
	if v == nil {
		// A new file: log segments beside it are a removed raft.db's, of no
		// use without it (no snapshot, no raft ID). They are renamed out of
		// the way (kept for forensics), so the log is empty as it would be
		// without them: the manager then refuses to restart from it.
		if err := orphanSegments(s.path); err != nil {
			return err
		}
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
		if err := migrations[have-1](s, tx); err != nil {
			return fmt.Errorf("migrate schema %d -> %d: %w", have, have+1, err)
		}
	}
	return meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, schemaVersion))
}

// load checks the records of the bbolt file and fills the in-memory log
// from them and from what the log segments held (st).
func (s *DiskStorage) load(tx *bolt.Tx, st walState) error {
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
	var compacted uint64
	if v := meta.Get(keyCompacted); v != nil {
		b, err := s.rc.unseal(bucketMeta, keyCompacted, v)
		if err != nil || len(b) != 8 {
			return damaged("compaction record: bad checksum or length")
		}
		compacted = binary.BigEndian.Uint64(b)
	}
	if k, _ := tx.Bucket(bucketEntries).Cursor().First(); k != nil || meta.Get(keyHardState) != nil {
		return damaged("schema %d keeps entries in the log segments, but the file holds some", schemaVersion)
	}
	snap, err := readSnapshot(tx, s.rc)
	if err != nil {
		return damaged("snapshot: %v", err)
	}
	hs := st.hs
	// Entries may start before the snapshot: those kept for slow followers.
	// Segments are dropped whole, so the log may hold entries before the
	// compaction point: they are left out.
	ents := st.ents
	if n := len(ents); n > 0 && compacted > ents[0].Index {
		ents = ents[min(compacted-ents[0].Index, uint64(n)):]
	}
	si := snap.Metadata.Index
	if len(ents) > 0 && !raft.IsEmptySnap(snap) {
		first, last := ents[0].Index, ents[len(ents)-1].Index
		switch {
		case first > si+1:
			return damaged("entries start at %d but the snapshot ends at %d", first, si)
		case first <= si && (last < si || ents[si-first].Term != snap.Metadata.Term):
			// The snapshot a leader sent was saved, but the crash came
			// before the log recorded it: the log is the snapshot's, as
			// raft would have made it.
			ents = nil
		}
	}
	if len(ents) > 0 && raft.IsEmptySnap(snap) && ents[0].Index != 1 {
		return damaged("entries start at %d without a snapshot", ents[0].Index)
	}
	next := si + 1
	switch {
	case len(ents) == 0:
		if !raft.IsEmptySnap(snap) {
			if err := s.mem.ApplySnapshot(snap); err != nil {
				return damaged("snapshot: %v", err)
			}
		}
	case ents[0].Index == si+1 || raft.IsEmptySnap(snap):
		if !raft.IsEmptySnap(snap) {
			if err := s.mem.ApplySnapshot(snap); err != nil {
				return damaged("snapshot: %v", err)
			}
		}
		if err := s.mem.Append(ents); err != nil {
			return damaged("entries: %v", err)
		}
		next = ents[len(ents)-1].Index + 1
	default:
		// The first entry is the compaction point: make it the log's dummy
		// entry, append the rest, then record the real snapshot on top.
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
		next = ents[len(ents)-1].Index + 1
	}
	last := next - 1
	if !raft.IsEmptyHardState(hs) && hs.Commit < si {
		// The snapshot (bbolt, fsynced) is newer than the last hard state
		// that reached the log (one not fsynced: only the commit moved).
		// A snapshot holds only committed entries.
		hs.Commit = si
	}
	if hs.Commit > last {
		return damaged("commit index %d is past the last entry %d (entries are missing)", hs.Commit, last)
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

// Save persists one Ready's worth of state, then makes it visible to raft:
// the snapshot first, then entries (replacing any conflicting suffix), then
// the hard state. A snapshot goes to the bbolt file (a transaction of its
// own, fsynced: snapshots are rare); the entries and the hard state are
// appended to the log with one write and one fdatasync, skipped when
// mustSync is false and nothing but the hard state changed (raft allows it
// when only the commit index moved: it can be learned again).
func (s *DiskStorage) Save(hs raftpb.HardState, ents []raftpb.Entry, snap raftpb.Snapshot, mustSync bool) error {
	if raft.IsEmptyHardState(hs) && len(ents) == 0 && raft.IsEmptySnap(snap) {
		return nil
	}
	if !raft.IsEmptySnap(snap) {
		s.snapMu.Lock() // not while CreateSnapshot writes an older one
		defer s.snapMu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wal == nil {
		return fmt.Errorf("persist raft state to %s: the log is closed", s.path)
	}
	recs := make([]walRecord, 0, len(ents)+2)
	if !raft.IsEmptySnap(snap) {
		if err := s.db.Update(func(tx *bolt.Tx) error { return writeSnapshot(tx, snap, s.rc) }); err != nil {
			return fmt.Errorf("persist raft state to %s: %w", s.path, err)
		}
		mark := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, snap.Metadata.Index), snap.Metadata.Term)
		recs = append(recs, walRecord{typ: walSnapshot, data: mark})
	}
	for i := range ents {
		data, err := ents[i].Marshal()
		if err != nil {
			return err
		}
		recs = append(recs, walRecord{typ: walEntry, data: data, index: ents[i].Index})
	}
	if !raft.IsEmptyHardState(hs) {
		data, err := hs.Marshal()
		if err != nil {
			return err
		}
		recs = append(recs, walRecord{typ: walHardState, data: data})
	}
	sync := mustSync || len(ents) > 0 || !raft.IsEmptySnap(snap)
	if err := s.wal.append(recs, sync); err != nil {
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
// compacts the log so that `keep` entries before i stay for slow followers:
// the compaction point is recorded with the snapshot, and the log segments
// whose entries are all before it are removed.
//
// The snapshot's bytes are written to the bbolt file without holding the
// lock Save takes: at 1,000,000 tasks a snapshot is tens of MiB (190 ms for
// 45 MiB on a quiet disk), and a Ready loop held up that long sends no
// heartbeats, so the followers, which snapshot at about the same index,
// took turns deposing the leader. Only the in-memory install and the
// compaction take the lock. A crash between the two leaves the snapshot on
// disk with the log still whole, which opens as it did before.
func (s *DiskStorage) CreateSnapshot(i uint64, cs *raftpb.ConfState, data []byte, keep uint64) (raftpb.Snapshot, error) {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	term, err := s.snapshotTerm(i)
	if err != nil {
		return raftpb.Snapshot{}, err
	}
	snap := raftpb.Snapshot{Data: data, Metadata: raftpb.SnapshotMetadata{Index: i, Term: term, ConfState: *cs}}
	compact := uint64(0)
	if i > keep {
		compact = i - keep
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if s.duringSnapshotWrite != nil {
			s.duringSnapshotWrite()
		}
		if err := writeSnapshot(tx, snap, s.rc); err != nil {
			return err
		}
		if compact > 0 {
			k := binary.BigEndian.AppendUint64(nil, compact)
			return tx.Bucket(bucketMeta).Put(keyCompacted, s.rc.seal(bucketMeta, keyCompacted, k))
		}
		return nil
	})
	if err != nil {
		return snap, fmt.Errorf("persist snapshot to %s: %w", s.path, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Only Save of a snapshot installs one besides this, and it waits for
	// snapMu: nothing newer can have come in meanwhile.
	if snap, err = s.mem.CreateSnapshot(i, cs, data); err != nil {
		return snap, err
	}
	if first, _ := s.mem.FirstIndex(); compact > first {
		if err := s.mem.Compact(compact); err != nil && !errors.Is(err, raft.ErrCompacted) {
			return snap, err
		}
	}
	if s.wal == nil {
		return snap, fmt.Errorf("compact the log of %s: the log is closed", s.path)
	}
	if err := s.wal.dropBefore(compact); err != nil {
		return snap, fmt.Errorf("remove compacted log segments of %s: %w", s.path, err)
	}
	return snap, nil
}

// snapshotTerm checks that a snapshot at index i can be taken (newer than
// the current one, within the log, the log open) and returns i's term.
func (s *DiskStorage) snapshotTerm(i uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wal == nil {
		return 0, fmt.Errorf("snapshot of %s: the log is closed", s.path)
	}
	cur, err := s.mem.Snapshot()
	if err != nil {
		return 0, err
	}
	if i <= cur.Metadata.Index {
		return 0, raft.ErrSnapOutOfDate
	}
	if last, _ := s.mem.LastIndex(); i > last {
		return 0, fmt.Errorf("snapshot at %d is past the log's last entry %d", i, last)
	}
	return s.mem.Term(i)
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

// Close closes the files.
func (s *DiskStorage) Close() error {
	s.snapMu.Lock() // a snapshot being written finishes first
	defer s.snapMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.wal != nil {
		err = s.wal.close()
		s.wal = nil
	}
	if s.db != nil {
		err = errors.Join(s.db.Close(), err)
	}
	return err
}
