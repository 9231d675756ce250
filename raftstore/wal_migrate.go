package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/raft/v3/raftpb"
)

// migrateHook, set by tests, is called at the named points of the 2 -> 3
// migration; an error it returns stands for a crash there.
var migrateHook func(point string) error

// migrateToWAL moves the entries and the hard state of a schema 2 file to
// the log segments, in the transaction that bumps the schema to 3. The
// segments are written and fsynced first; then the transaction deletes the
// records and bumps the version. A crash before the commit leaves a schema
// 2 file whose segments the next open discards and writes again; after it,
// a schema 3 file. So every moment leaves a log that opens.
func (s *DiskStorage) migrateToWAL(tx *bolt.Tx) error {
	if err := s.checkCipher(tx); err != nil {
		if errors.Is(err, errCipherInit) {
			return nil // cannot be: checkCipher writes in a writable tx
		}
		var oe *openError
		if errors.As(err, &oe) {
			return err
		}
		return &DamagedError{Path: s.path, Detail: err.Error()}
	}
	if err := removeSegments(s.path); err != nil {
		return err
	}
	damaged := func(format string, a ...any) error {
		return &DamagedError{Path: s.path, Detail: fmt.Sprintf(format, a...)}
	}
	var recs []walRecord
	var first, next uint64
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
		if first == 0 {
			first = idx
		}
		recs = append(recs, walRecord{typ: walEntry, data: b, index: idx})
		next = idx + 1
	}
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get(keyHardState); v != nil {
		b, err := s.rc.unseal(bucketMeta, keyHardState, v)
		if err != nil {
			return damaged("hard state: %v", err)
		}
		var hs raftpb.HardState
		if err := hs.Unmarshal(b); err != nil {
			return damaged("hard state: %v", err)
		}
		recs = append(recs, walRecord{typ: walHardState, data: b})
	}
	if len(recs) > 0 {
		w := &wal{base: s.path, rc: s.rc}
		err := w.append(recs, true)
		if cerr := w.close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if migrateHook != nil {
		if err := migrateHook("segments written"); err != nil {
			return err
		}
	}
	if err := tx.DeleteBucket(bucketEntries); err != nil {
		return err
	}
	if _, err := tx.CreateBucket(bucketEntries); err != nil {
		return err
	}
	if err := meta.Delete(keyHardState); err != nil {
		return err
	}
	if first > 0 {
		// The first entry was the compaction point: entries before it are
		// gone, and it stays as the log's first (dummy) entry.
		k := binary.BigEndian.AppendUint64(nil, first)
		if err := meta.Put(keyCompacted, s.rc.seal(bucketMeta, keyCompacted, k)); err != nil {
			return err
		}
	}
	if migrateHook != nil {
		return migrateHook("records moved")
	}
	return nil
}
