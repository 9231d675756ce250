package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/boltcheck"
)

// DiskFaultError says the raft log file could not be written: the file
// system is full, over quota, read-only, or the disk fails. The manager
// refuses writes while it lasts, probes the disk with a bounded backoff and
// resumes by itself once a write succeeds (no restart). Its message names
// the errno, the file and the fix, e.g. "no space left on device writing
// /var/lib/shoal/raft/raft.db: free space on that file system, then the
// manager resumes by itself".
//
// ENOSPC and EDQUOT are of class errdefs.ErrResourceExhausted; the others
// errdefs.ErrUnavailable. errors.Is also matches the errno.
type DiskFaultError struct {
	Path  string        // the file that could not be written
	Errno syscall.Errno // why
	Since time.Time     // when the fault began (zero: not recorded)
	// AtStart is set when the fault stopped the raft log from opening:
	// then the fix is to start shoald again.
	AtStart bool
}

func (e *DiskFaultError) Error() string {
	return fmt.Sprintf("%s writing %s: %s", e.Errno.Error(), e.Path, e.fix())
}

func (e *DiskFaultError) fix() string {
	then := "then the manager resumes by itself"
	if e.AtStart {
		then = "then start shoald again"
	}
	switch e.Errno {
	case syscall.ENOSPC:
		return "free space on that file system, " + then
	case syscall.EDQUOT:
		return "free space or raise the disk quota, " + then
	case syscall.EIO:
		return "the disk reports I/O errors (see the kernel log, dmesg): repair or replace it; " + then + " once writes succeed"
	case syscall.EROFS:
		return "the file system is read-only (the kernel may have remounted it after an error, see dmesg): remount it read-write, " + then
	}
	return "fix the file system, " + then + " once writes succeed"
}

// Condition is the fault in a few words, for tables: "disk full", "disk
// I/O error", "disk read-only".
func (e *DiskFaultError) Condition() string {
	switch e.Errno {
	case syscall.ENOSPC:
		return "disk full"
	case syscall.EDQUOT:
		return "disk quota exceeded"
	case syscall.EIO:
		return "disk I/O error"
	case syscall.EROFS:
		return "disk read-only"
	}
	return "disk error"
}

// Is makes the error match its errdefs class and its errno.
func (e *DiskFaultError) Is(target error) bool {
	switch target {
	case errdefs.ErrResourceExhausted:
		return e.Errno == syscall.ENOSPC || e.Errno == syscall.EDQUOT
	case errdefs.ErrUnavailable:
		return e.Errno != syscall.ENOSPC && e.Errno != syscall.EDQUOT
	}
	if errno, ok := target.(syscall.Errno); ok {
		return errno == e.Errno
	}
	return false
}

// resumableErrnos are the write failures a manager rides out: each can go
// away without a restart (space freed, quota raised, disk remounted or a
// transient I/O error). Any other failure to persist stops the node.
var resumableErrnos = []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EROFS}

// asDiskFault returns the DiskFaultError for a failed write of the file at
// path, or nil when err is not one of resumableErrnos. bbolt reports some
// failures (growing the file, its sync) with the errno only in the text, so
// the text is matched too.
func asDiskFault(path string, err error) *DiskFaultError {
	if err == nil {
		return nil
	}
	var df *DiskFaultError
	if errors.As(err, &df) {
		return df
	}
	for _, errno := range resumableErrnos {
		if errors.Is(err, errno) || strings.Contains(err.Error(), errno.Error()) {
			return &DiskFaultError{Path: path, Errno: errno}
		}
	}
	return nil
}

// probeDisk checks that the file system of the raft log at path takes
// writes again: it writes and syncs `size` bytes to a scratch file next to
// it and removes it. The margin keeps a manager from resuming onto a disk
// with only a few bytes free. Any failure comes back as a DiskFaultError
// on the raft log (with the errno the file system gave, EIO when there is
// none): the scratch file only stands in for it.
func probeDisk(path string, size int64) (err error) {
	probe := path + ".probe"
	fail := func(err error) error {
		if df := asDiskFault(path, err); df != nil {
			return &DiskFaultError{Path: path, Errno: df.Errno}
		}
		var errno syscall.Errno
		if !errors.As(err, &errno) {
			errno = syscall.EIO
		}
		return &DiskFaultError{Path: path, Errno: errno}
	}
	f, err := os.OpenFile(probe, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fail(err)
	}
	defer func() {
		_ = f.Close()
		if rerr := os.Remove(probe); rerr != nil && err == nil {
			err = fail(rerr)
		}
	}()
	buf := make([]byte, 256<<10)
	for written := int64(0); written < size; {
		n := min(int64(len(buf)), size-written)
		if _, err := f.Write(buf[:n]); err != nil {
			return fail(err)
		}
		written += n
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	return nil
}

// removeProbe deletes a scratch file a crash may have left behind.
func removeProbe(path string) {
	_ = os.Remove(path + ".probe")
}

// ensureSchema creates the buckets and the schema record, or migrates them,
// writing only when something changes: a manager must be able to start
// (and then report its disk fault) on a full disk.
func (s *DiskStorage) ensureSchema(db *bolt.DB) error {
	current := false
	_ = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil || tx.Bucket(bucketEntries) == nil || tx.Bucket(bucketSnapshot) == nil {
			return nil
		}
		v := meta.Get(keySchema)
		current = len(v) == 4 && binary.BigEndian.Uint32(v) == schemaVersion
		return nil
	})
	if current {
		return nil
	}
	if err := db.Update(s.initSchema); err != nil {
		var de *DamagedError
		var oe *openError
		if errors.As(err, &de) || errors.As(err, &oe) {
			return err
		}
		if df := asDiskFault(s.path, err); df != nil {
			df.AtStart = true
			return df
		}
		return &DamagedError{Path: s.path, Detail: err.Error()}
	}
	return nil
}

// reopen closes the bbolt file and the log and opens them again, reloading
// the in-memory log from what the files hold (a torn last write is cut
// off), then proves that a write transaction
// commits. It is how a node resumes after a disk fault: bbolt's state after
// a failed commit (a failed grow may even leave it unmapped) is never
// trusted, and the in-memory log is rebuilt from the disk alone, so it
// holds nothing that is not durable.
//
// The caller must make sure no raft node reads the storage meanwhile (the
// node's raft is stopped while it has a disk fault). A file that fails the
// checks of OpenDiskStorage yields a *DamagedError; a write that fails, a
// *DiskFaultError, and the storage then stays closed until the next reopen.
func (s *DiskStorage) reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Closing a bbolt handle after a failed commit only unmaps and unlocks;
	// its error says nothing about the file. The same for the segment.
	s.closeFiles()
	err := boltcheck.Check(s.path)
	if err != nil {
		err = &DamagedError{Path: s.path, Detail: err.Error()}
	}
	fresh := &DiskStorage{path: s.path, mem: raft.NewMemoryStorage(), rc: s.rc}
	if err == nil {
		err = guard(s.path, func() error { return fresh.open() })
	}
	if err == nil {
		// A commit that rewrites one record, fsynced: the file takes writes.
		err = fresh.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint32(nil, schemaVersion))
		})
	}
	if err != nil {
		fresh.closeFiles()
		// A read or write that fails with one of the resumable errnos
		// (EIO: the disk still fails) means: go on probing. Damage found by
		// the checks is final.
		if df := asDiskFault(s.path, err); df != nil {
			return &DiskFaultError{Path: s.path, Errno: df.Errno}
		}
		return err
	}
	s.db, s.wal, s.mem, s.raftID = fresh.db, fresh.wal, fresh.mem, fresh.raftID
	return nil
}

// durableState is what the file holds after reopen: the hard state, the
// snapshot and the last index.
func (s *DiskStorage) durableState() (raftpb.HardState, raftpb.Snapshot, uint64, error) {
	hs, _, err := s.mem.InitialState()
	if err != nil {
		return hs, raftpb.Snapshot{}, 0, err
	}
	snap, err := s.mem.Snapshot()
	if err != nil {
		return hs, snap, 0, err
	}
	last, err := s.mem.LastIndex()
	return hs, snap, last, err
}
