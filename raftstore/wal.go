package raftstore

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"go.etcd.io/raft/v3/raftpb"
)

// The write-ahead log: raft entries and hard states appended to segment
// files beside the bbolt file, one write and at most one fdatasync per
// Save. The layout and the recovery rules are drawn in doc.go.

// Record types of the log.
const (
	walHeader    byte = 1 // first record of a segment: walMagic ++ uint64 seq
	walEntry     byte = 2 // raftpb.Entry
	walHardState byte = 3 // raftpb.HardState
	walSnapshot  byte = 4 // uint64 index ++ uint64 term: the log restarts after a snapshot
)

const walMagic = "shoal-wal-v1"

// walSegmentSize is the size past which the log moves to a new segment
// (a variable so tests can make segments small); walGrowChunk is how far
// ahead a segment is zero-filled, so that most appends overwrite allocated
// blocks and their fdatasync writes no file metadata.
var walSegmentSize int64 = 64 << 20

const (
	walGrowChunk = 256 << 10
	walMaxRecord = 1 << 30
)

// bucketWAL is the first half of a log record's associated data; the second
// is the segment's sequence number and the record's offset, so a record
// moved elsewhere does not decrypt.
var bucketWAL = []byte("wal")

// walZeros is what segments are zero-filled with; never written to.
var walZeros = make([]byte, walGrowChunk)

func walAD(seq uint64, off int64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, seq), uint64(off))
}

// segmentPath names segment seq of the log of the bbolt file at base.
func segmentPath(base string, seq uint64) string {
	return fmt.Sprintf("%s.%016x.wal", base, seq)
}

// walRecord is one record to append.
type walRecord struct {
	typ   byte
	data  []byte
	index uint64 // entries: their index
}

type walSegment struct {
	seq      uint64
	path     string
	maxIndex uint64 // highest entry index in it, 0 if none
}

// wal appends to the newest segment. Not safe for concurrent use (the
// DiskStorage's mutex serializes it).
type wal struct {
	base    string
	rc      *recordCipher
	segs    []walSegment // oldest first; the last is the one appended to
	f       *os.File     // the last segment, nil until the first append
	off     int64        // append position in f
	start   int64        // where f's records after its header begin (0: unknown)
	alloc   int64        // size of f (zero-filled past off)
	hs      raftpb.HardState
	scratch []byte // a record's plaintext while it is encrypted
	// broken is the error of a failed write: the file's tail is unknown,
	// so nothing more is appended until the log is opened again.
	broken error
}

// walState is what replaying the log yields.
type walState struct {
	ents []raftpb.Entry
	hs   raftpb.HardState
}

// listSegments returns the sequence numbers of the segments of base, in
// order, and removes the temporary file a crash while creating one left.
func listSegments(base string) ([]uint64, error) {
	dir, prefix := filepath.Dir(base), filepath.Base(base)+"."
	des, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var seqs []uint64
	for _, de := range des {
		name := de.Name()
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		rest := name[len(prefix):]
		if strings.HasSuffix(rest, ".wal.tmp") {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return nil, err
			}
			continue
		}
		hex, ok := strings.CutSuffix(rest, ".wal")
		if !ok || len(hex) != 16 {
			continue
		}
		seq, err := strconv.ParseUint(hex, 16, 64)
		if err != nil || seq == 0 {
			continue
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	return seqs, nil
}

// removeSegments deletes every segment of base (a crashed migration's).
func removeSegments(base string) error {
	seqs, err := listSegments(base)
	if err != nil {
		return err
	}
	for _, seq := range seqs {
		if err := os.Remove(segmentPath(base, seq)); err != nil {
			return err
		}
	}
	if len(seqs) > 0 {
		return syncDir(filepath.Dir(base))
	}
	return nil
}

// orphanSegments renames every segment of base to <segment>.orphaned.
func orphanSegments(base string) error {
	seqs, err := listSegments(base)
	if err != nil {
		return err
	}
	for _, seq := range seqs {
		p := segmentPath(base, seq)
		if err := os.Rename(p, p+".orphaned"); err != nil {
			return err
		}
	}
	return nil
}

// openWAL reads every segment of the log of base and prepares appending to
// the last one. A torn tail of the last segment (see unwrittenAt and
// validAfter) is cut off; any other bad record is a *DamagedError naming
// its segment.
func openWAL(base string, rc *recordCipher) (*wal, walState, error) {
	w := &wal{base: base, rc: rc}
	var st walState
	seqs, err := listSegments(base)
	if err != nil {
		return nil, st, err
	}
	for i, seq := range seqs {
		path := segmentPath(base, seq)
		if i > 0 && seq != seqs[i-1]+1 {
			return nil, st, &DamagedError{Path: path, Detail: fmt.Sprintf("log segment %d is missing", seqs[i-1]+1)}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, st, err
		}
		seg := walSegment{seq: seq, path: path}
		last := i == len(seqs)-1
		end, bad, err := scanSegment(b, seq, rc, func(typ byte, data []byte, off int64) error {
			return st.apply(typ, data, off, seq, &seg)
		})
		if err != nil {
			return nil, st, &DamagedError{Path: path, Detail: err.Error()}
		}
		if bad != nil && (!last || !unwrittenAt(b, end) || validAfter(b, end, seq, rc)) {
			return nil, st, &DamagedError{Path: path, Detail: bad.Error()}
		}
		if end == 0 {
			// Written and synced before it got its name: never torn.
			return nil, st, &DamagedError{Path: path, Detail: "the log segment has no valid header"}
		}
		w.segs = append(w.segs, seg)
		if !last {
			continue
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, st, err
		}
		if bad != nil {
			// A torn tail: cut it off, so that what is appended next is
			// followed by zeros only. Shrinking needs no free space.
			if err := f.Truncate(end); err != nil {
				_ = f.Close()
				return nil, st, err
			}
			if err := fdatasync(f); err != nil {
				_ = f.Close()
				return nil, st, err
			}
			b = b[:end]
		}
		w.f, w.off, w.alloc = f, end, int64(len(b))
	}
	w.hs = st.hs
	return w, st, nil
}

// apply replays one record into the state.
func (st *walState) apply(typ byte, data []byte, off int64, seq uint64, seg *walSegment) error {
	if (off == 0) != (typ == walHeader) {
		return fmt.Errorf("record of type %d at offset %d (a segment starts with its header, and only there)", typ, off)
	}
	switch typ {
	case walHeader:
		if len(data) != len(walMagic)+8 || string(data[:len(walMagic)]) != walMagic {
			return errors.New("segment header does not decode")
		}
		if got := binary.BigEndian.Uint64(data[len(walMagic):]); got != seq {
			return fmt.Errorf("segment header says it is segment %d, its name says %d", got, seq)
		}
	case walEntry:
		var e raftpb.Entry
		if err := e.Unmarshal(data); err != nil || e.Index == 0 {
			return fmt.Errorf("entry record at offset %d does not decode", off)
		}
		if n := len(st.ents); n > 0 {
			first, last := st.ents[0].Index, st.ents[n-1].Index
			switch {
			case e.Index > last+1:
				return fmt.Errorf("entries jump from index %d to %d at offset %d", last, e.Index, off)
			case e.Index < first:
				st.ents = st.ents[:0]
			case e.Index <= last:
				st.ents = st.ents[:e.Index-first] // a conflicting suffix is replaced
			}
		}
		st.ents = append(st.ents, e)
		seg.maxIndex = max(seg.maxIndex, e.Index)
	case walHardState:
		var hs raftpb.HardState
		if err := hs.Unmarshal(data); err != nil {
			return fmt.Errorf("hard state record at offset %d does not decode", off)
		}
		st.hs = hs
	case walSnapshot:
		if len(data) != 16 {
			return fmt.Errorf("snapshot record at offset %d does not decode", off)
		}
		st.ents = st.ents[:0]
	default:
		return fmt.Errorf("unknown record type %d at offset %d", typ, off)
	}
	return nil
}

// scanSegment calls fn for each record of segment b in order. It returns
// the offset where the good records end and, in bad, what is wrong at that
// offset (nil: the records end cleanly, with zeros or the end of the file).
// An error of fn is returned as err.
func scanSegment(b []byte, seq uint64, rc *recordCipher, fn func(typ byte, data []byte, off int64) error) (end int64, bad, err error) {
	off := 0
	for {
		if len(b)-off < 4 {
			if !allZero(b[off:]) {
				return int64(off), fmt.Errorf("a partial record at offset %d", off), nil
			}
			return int64(off), nil, nil
		}
		n := int(binary.BigEndian.Uint32(b[off:]))
		if n == 0 {
			if !allZero(b[off:]) {
				return int64(off), fmt.Errorf("bytes after the end of the records at offset %d", off), nil
			}
			return int64(off), nil, nil
		}
		v, err := unsealWAL(b, off, n, seq, rc)
		if err != nil {
			return int64(off), err, nil
		}
		if err := fn(v[0], v[1:], int64(off)); err != nil {
			return int64(off), nil, err
		}
		off += 4 + n
	}
}

// unsealWAL checks and decodes the record of length n at off.
func unsealWAL(b []byte, off, n int, seq uint64, rc *recordCipher) ([]byte, error) {
	if n < 5 || n > walMaxRecord || n > len(b)-off-4 {
		return nil, fmt.Errorf("record at offset %d: length %d runs past the end of the file", off, n)
	}
	v, err := rc.unseal(bucketWAL, walAD(seq, int64(off)), b[off+4:off+4+n])
	if err != nil {
		return nil, fmt.Errorf("record at offset %d: %v", off, err)
	}
	if len(v) == 0 {
		return nil, fmt.Errorf("record at offset %d is empty", off)
	}
	return v, nil
}

// validAfter reports whether a good record follows the bad one at off: then
// the bad record is damage in the middle of the log, not a torn tail.
func validAfter(b []byte, off int64, seq uint64, rc *recordCipher) bool {
	if int64(len(b))-off < 4 {
		return false
	}
	n := int64(binary.BigEndian.Uint32(b[off:]))
	next := off + 4 + n
	if n == 0 || next+4 > int64(len(b)) {
		return false
	}
	m := int(binary.BigEndian.Uint32(b[next:]))
	_, err := unsealWAL(b, int(next), m, seq, rc)
	return err == nil
}

// sectorSize is the unit a disk writes whole or not at all (or at least
// the smallest one in use).
const sectorSize = 512

// unwrittenAt reports whether the bad record at off looks like a write the
// disk completed only in part: a sector of it reads as zeros (segments are
// zero-filled ahead, and a sealed record has no run of 16 zero bytes
// unless its data has one), or its length field is cut off at the end of
// the file or lies in such a sector. A record garbled without a zero
// sector (a bit flip) is damage, even at the end of the log.
func unwrittenAt(b []byte, off int64) bool {
	size := int64(len(b))
	if size-off < 4 {
		return true
	}
	n := int64(binary.BigEndian.Uint32(b[off:]))
	if n < 5 || n > walMaxRecord || n > size-off-4 {
		// The length is not one that was written: it lies in a sector the
		// disk did not write (the rest of its sector, or the next one when
		// it straddles two).
		first := b[off:min(off/sectorSize*sectorSize+sectorSize, size)]
		next := (off + 3) / sectorSize * sectorSize
		return allZero(first) || (next > off && allZero(b[next:min(next+sectorSize, size)]))
	}
	end := off + 4 + n
	for s := off / sectorSize * sectorSize; s < end; s += sectorSize {
		lo, hi := max(s, off), min(s+sectorSize, end)
		if hi-lo >= 16 && allZero(b[lo:hi]) {
			return true
		}
	}
	return false
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// encode appends record r, to be written at offset off of segment seq, to
// buf: the bytes rc.seal would give, built in place (a record is copied
// once, not three times: entries can be megabytes).
func (w *wal) encode(buf []byte, seq uint64, off int64, r walRecord) []byte {
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0) // length, CRC-32C
	if w.rc == nil {
		buf = append(append(buf, r.typ), r.data...)
	} else {
		ns := w.rc.aead.NonceSize()
		buf = append(buf, make([]byte, ns)...)
		nonce := buf[len(buf)-ns:]
		if _, err := rand.Read(nonce); err != nil {
			panic(fmt.Sprintf("crypto/rand failed: %v", err)) // never, per crypto/rand's contract
		}
		plain := append(append(w.scratch[:0], r.typ), r.data...)
		buf = w.rc.aead.Seal(buf, nonce, plain, recordAD(bucketWAL, walAD(seq, off)))
		if cap(plain) <= 1<<20 {
			w.scratch = plain[:0]
		}
	}
	body := buf[start+8:]
	binary.BigEndian.PutUint32(buf[start:], uint32(4+len(body)))
	binary.BigEndian.PutUint32(buf[start+4:], crc32.Checksum(body, crcTable))
	return buf
}

// append writes the records with one write and, when sync is set, one
// fdatasync. A segment that would grow past walSegmentSize is first
// closed and a new one started.
func (w *wal) append(recs []walRecord, sync bool) error {
	if w.broken != nil {
		return w.broken
	}
	size := int64(0)
	for _, r := range recs {
		size += int64(len(r.data)) + 64
	}
	if w.f == nil || (w.off > w.start && w.off+size > walSegmentSize) {
		if err := w.rotate(); err != nil {
			w.broken = err
			return err
		}
	}
	seg := &w.segs[len(w.segs)-1]
	buf := make([]byte, 0, size)
	for _, r := range recs {
		buf = w.encode(buf, seg.seq, w.off+int64(len(buf)), r)
	}
	end := w.off + int64(len(buf))
	if err := w.grow(end); err != nil {
		w.broken = err
		return err
	}
	if _, err := w.f.WriteAt(buf, w.off); err != nil {
		w.broken = err
		return err
	}
	if sync {
		if err := fdatasync(w.f); err != nil {
			w.broken = err
			return err
		}
	}
	w.off = end
	for _, r := range recs {
		switch r.typ {
		case walEntry:
			seg.maxIndex = max(seg.maxIndex, r.index)
		case walHardState:
			var hs raftpb.HardState
			if hs.Unmarshal(r.data) == nil {
				w.hs = hs
			}
		}
	}
	return nil
}

// grow makes the segment at least end bytes long before records up to end
// are written: it zero-fills from end (or the current size, if more) to
// the next walGrowChunk boundary, so a full disk mostly fails here, before
// the records are written. The records then fill the hole below end; a
// write cut short there leaves zeros after it, a torn tail.
func (w *wal) grow(end int64) error {
	if end <= w.alloc {
		return nil
	}
	target := (end + walGrowChunk - 1) / walGrowChunk * walGrowChunk
	from := max(w.alloc, end)
	for at := from; at < target; {
		n := min(int64(len(walZeros)), target-at)
		if _, err := w.f.WriteAt(walZeros[:n], at); err != nil {
			return err
		}
		at += n
	}
	if target == from {
		// end is on a chunk boundary: the records themselves extend the file.
		target = end
	}
	w.alloc = target
	return nil
}

// rotate syncs and closes the current segment and starts the next one: a
// temporary file with the header and the current hard state (so any older
// segment may be dropped), zero-filled, fsynced and renamed into place.
func (w *wal) rotate() error {
	seq := uint64(1)
	if len(w.segs) > 0 {
		seq = w.segs[len(w.segs)-1].seq + 1
	}
	if w.f != nil {
		if err := fdatasync(w.f); err != nil {
			return err
		}
		_ = w.f.Close()
		w.f = nil
	}
	path := segmentPath(w.base, seq)
	f, err := os.OpenFile(path+".tmp", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w.f, w.off, w.alloc = f, 0, 0
	fail := func(err error) error {
		_ = f.Close()
		_ = os.Remove(path + ".tmp")
		w.f = nil
		return err
	}
	hdr := binary.BigEndian.AppendUint64([]byte(walMagic), seq)
	buf := w.encode(nil, seq, 0, walRecord{typ: walHeader, data: hdr})
	if hs := w.hs; hs.Term != 0 || hs.Vote != 0 || hs.Commit != 0 {
		data, err := hs.Marshal()
		if err != nil {
			return fail(err)
		}
		buf = w.encode(buf, seq, int64(len(buf)), walRecord{typ: walHardState, data: data})
	}
	if err := w.grow(int64(len(buf))); err != nil {
		return fail(err)
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return fail(err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fail(err)
	}
	w.off, w.start = int64(len(buf)), int64(len(buf))
	w.segs = append(w.segs, walSegment{seq: seq, path: path})
	return nil
}

// dropBefore removes the oldest segments, never the one appended to, while
// every entry they hold is below index.
func (w *wal) dropBefore(index uint64) error {
	n := 0
	for n < len(w.segs)-1 && w.segs[n].maxIndex < index {
		if err := os.Remove(w.segs[n].path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		n++
	}
	w.segs = w.segs[n:]
	return nil
}

func (w *wal) close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// fdatasync flushes f's data, and its metadata only when reading the data
// back needs it (a grown size).
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
