package logdriver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"time"
)

// ReadOptions select the records Read returns.
type ReadOptions struct {
	// Since drops records read by the driver before it.
	Since time.Time
	// Tail returns only the last Tail records (before Since filters them);
	// negative: all.
	Tail int64
	// Follow keeps reading new records, across rotations, until the
	// context ends.
	Follow bool
	// Poll is how often a followed log is checked for growth and
	// rotation. Default 200ms.
	Poll time.Duration
}

// readChunkSize bounds what the reader holds: one chunk and one record.
const readChunkSize = 32 << 10

// Read sends the records of the log whose current file is path, and which
// keeps maxFile files (see File), to fn, oldest first: the rotated files
// path.(maxFile-1) … path.1, then path. Record.Line aliases the reader's
// buffer: fn must copy what it keeps. A record that does not decode
// (debris of a crash or a full disk) is skipped, and so is a last one
// without its newline, unless following (it is then read once complete).
//
// Read takes what the log holds when it begins: it opens the files, newest
// first, and checks that no rotation came meanwhile (retrying a few times),
// counts Tail back from the newest, and reads on from there through the
// files it holds open, so rotations while it reads (renaming or dropping
// them) neither repeat nor skip a line. With Follow it goes on with the
// current file; when the driver rotates it, Read finishes it and continues
// with the file that came after it, found by identity among the rotated
// names (a place newer than the finished one). A follower that falls more
// than maxFile-1 rotations behind loses the files dropped in between, as
// Docker's does. Without any file, Read returns nil at once, or with Follow
// waits for the log to begin.
func Read(ctx context.Context, path string, maxFile int, opts ReadOptions, fn func(Record) error) error {
	if maxFile < 1 {
		maxFile = 1
	}
	if opts.Poll <= 0 {
		opts.Poll = 200 * time.Millisecond
	}
	r := &reader{path: path, maxFile: maxFile, opts: opts, fn: fn}
	snap, consistent, err := r.snapshot()
	var extra *os.File // a file newer than the snapshot, while following
	defer func() {
		for _, e := range snap {
			e.f.Close()
		}
		if extra != nil {
			extra.Close()
		}
	}()
	if err != nil {
		return err
	}
	for len(snap) == 0 {
		if !opts.Follow || !sleepCtx(ctx, opts.Poll) {
			return nil
		}
		if snap, consistent, err = r.snapshot(); err != nil {
			return err
		}
	}
	i, off, err := r.start(snap)
	if err != nil {
		return err
	}
	// Read the snapshot's files from there to the newest, each up to what
	// it held when Read began.
	r.f, r.off = snap[i].f, off
	for {
		if err := r.readTo(snap[i].size); err != nil {
			return err
		}
		if i == 0 {
			break
		}
		if consistent {
			i--
			r.f, r.off, r.partial, r.skipping = snap[i].f, 0, r.partial[:0], false
			continue
		}
		// A snapshot spoilt by rotations: go by identity.
		fi, err := r.f.Stat()
		if err != nil {
			return err
		}
		next, err := r.successor(fi)
		if err != nil {
			return err
		}
		j := -1
		if next != nil {
			nfi, err := next.Stat()
			if err != nil {
				next.Close()
				return err
			}
			for k := range snap {
				if os.SameFile(snap[k].fi, nfi) {
					j = k
				}
			}
			if j < 0 { // newer than the snapshot: the newest was dropped meanwhile
				if !opts.Follow {
					next.Close()
					return nil
				}
				extra = next
				r.f, r.off, r.partial, r.skipping = next, 0, r.partial[:0], false
				break
			}
			next.Close()
		}
		if j < 0 || j >= i { // not found (cannot happen but in a storm of rotations): by order
			j = i - 1
		}
		i = j
		r.f, r.off, r.partial, r.skipping = snap[i].f, 0, r.partial[:0], false
	}
	if !opts.Follow {
		return nil
	}
	cur := r.f
	for {
		if !sleepCtx(ctx, opts.Poll) {
			return nil
		}
		next, err := r.follow(cur)
		if err != nil {
			return err
		}
		for next != nil {
			if cur == extra {
				cur.Close()
			}
			cur, extra = next, next
			r.off, r.partial, r.skipping = 0, r.partial[:0], false
			if next, err = r.follow(cur); err != nil {
				return err
			}
		}
	}
}

type reader struct {
	path    string
	maxFile int
	opts    ReadOptions
	fn      func(Record) error

	f        *os.File
	off      int64
	partial  []byte // the start of a record whose newline is not read yet
	skipping bool   // dropping a line too long to be a record, up to its newline
	buf      [readChunkSize]byte
}

// entry is a file of the log as Read found it.
type entry struct {
	f    *os.File
	fi   os.FileInfo
	size int64 // when Read began
}

// snapshot opens the log's files, newest first, each once. Rotations move
// files to higher names only and always put a new file at path, so when
// path is still the first file opened once all are, no rotation came
// between and the order is the log's: consistent. It retries a few times;
// in a storm of rotations it goes on with what it has (Read then starts
// its tail less exactly and reads from file to file by identity).
func (r *reader) snapshot() ([]entry, bool, error) {
	for attempt := 0; ; attempt++ {
		var es []entry
		for i := 0; i < r.maxFile; i++ {
			f, err := os.Open(RotatedName(r.path, i))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				closeEntries(es)
				return nil, false, err
			}
			fi, err := f.Stat()
			if err != nil {
				f.Close()
				closeEntries(es)
				return nil, false, err
			}
			dup := false
			for _, e := range es {
				dup = dup || os.SameFile(e.fi, fi)
			}
			if dup {
				f.Close()
				continue
			}
			es = append(es, entry{f: f, fi: fi, size: fi.Size()})
		}
		if len(es) == 0 {
			return nil, true, nil
		}
		st, err := os.Stat(r.path)
		if err == nil && os.SameFile(st, es[0].fi) {
			return es, true, nil
		}
		if attempt == 9 {
			return es, false, nil
		}
		closeEntries(es)
		time.Sleep(time.Millisecond)
	}
}

func closeEntries(es []entry) {
	for _, e := range es {
		e.f.Close()
	}
}

// start finds where reading begins, as an index into the snapshot (newest
// first) and an offset: with Tail, the Tail-th record from the end; with
// Since alone, the oldest file written to at or after Since (older files
// hold only older records); otherwise the oldest file's start.
func (r *reader) start(es []entry) (int, int64, error) {
	if r.opts.Tail >= 0 {
		n := r.opts.Tail
		for i := range es {
			off, left, err := tailOffset(es[i].f, es[i].size, n, &r.buf)
			if err != nil {
				return 0, 0, err
			}
			if left == 0 {
				return i, off, nil
			}
			n = left
		}
		return len(es) - 1, 0, nil
	}
	if !r.opts.Since.IsZero() {
		for i := len(es) - 1; i > 0; i-- {
			if !es[i].fi.ModTime().Before(r.opts.Since) {
				return i, 0, nil
			}
		}
		return 0, 0, nil
	}
	return len(es) - 1, 0, nil
}

// follow reads what was added to cur and, when cur has been rotated away,
// the rest of it; it then returns the file that came after cur (nil while
// cur is current or its successor does not exist yet).
func (r *reader) follow(cur *os.File) (*os.File, error) {
	r.f = cur
	fi, err := cur.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() < r.off { // truncated by someone: start over
		r.off, r.partial, r.skipping = 0, r.partial[:0], false
	}
	if err := r.readTo(fi.Size()); err != nil {
		return nil, err
	}
	st, err := os.Stat(r.path)
	switch {
	case err == nil && os.SameFile(st, fi):
		return nil, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	// Rotated (or being rotated): the driver no longer writes to cur.
	if fi, err = cur.Stat(); err != nil {
		return nil, err
	}
	if err := r.readTo(fi.Size()); err != nil {
		return nil, err
	}
	return r.successor(fi)
}

// successor opens the file begun right after the one cur describes: the
// one a place newer among the rotated names, or, when cur is no longer
// among them (dropped, or max-file 1), the oldest file there is.
func (r *reader) successor(cur os.FileInfo) (*os.File, error) {
	for attempt := 0; attempt < 5; attempt++ {
		idx := -1
		for i := 1; i < r.maxFile; i++ {
			st, err := os.Stat(RotatedName(r.path, i))
			if err == nil && os.SameFile(st, cur) {
				idx = i
				break
			}
		}
		var name string
		if idx > 0 {
			name = RotatedName(r.path, idx-1)
		} else {
			for i := r.maxFile - 1; i >= 0 && name == ""; i-- {
				if _, err := os.Stat(RotatedName(r.path, i)); err == nil {
					name = RotatedName(r.path, i)
				}
			}
			if name == "" {
				return nil, nil
			}
		}
		f, err := os.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil // mid-rotation: the next poll finds it
		}
		if err != nil {
			return nil, err
		}
		if idx < 0 {
			return f, nil
		}
		// Still in place? Otherwise another rotation came between.
		st, err := os.Stat(RotatedName(r.path, idx))
		if err == nil && os.SameFile(st, cur) {
			return f, nil
		}
		f.Close()
	}
	return nil, nil
}

// readTo reads r.f from r.off up to end and emits the complete records.
func (r *reader) readTo(end int64) error {
	for r.off < end {
		n := int64(len(r.buf))
		if end-r.off < n {
			n = end - r.off
		}
		got, err := r.f.ReadAt(r.buf[:n], r.off)
		if got == 0 && err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		r.off += int64(got)
		data := r.buf[:got]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			piece := data
			if i >= 0 {
				piece, data = data[:i+1], data[i+1:]
			} else {
				data = nil
			}
			if err := r.take(piece, i >= 0); err != nil {
				return err
			}
		}
	}
	return nil
}

// take adds piece to the record being read and, when it ends the line,
// emits the record. A line longer than any record is dropped without being
// held.
func (r *reader) take(piece []byte, ends bool) error {
	if !r.skipping {
		r.partial = append(r.partial, piece...)
		if len(r.partial) > MaxRecord {
			r.skipping, r.partial = true, r.partial[:0]
		}
	}
	if !ends {
		return nil
	}
	if r.skipping {
		r.skipping = false
		return nil
	}
	rec, err := Decode(r.partial[:len(r.partial)-1])
	r.partial = r.partial[:0]
	if err != nil || rec.Time.Before(r.opts.Since) {
		return nil
	}
	return r.fn(rec)
}

// tailOffset returns the offset where the last n records of the file's
// first size bytes begin, reading backwards a chunk at a time, and how
// many of the n the file did not hold. A last line without its newline is
// a record still being written and does not count.
func tailOffset(f *os.File, size, n int64, buf *[readChunkSize]byte) (int64, int64, error) {
	if n == 0 {
		return size, 0, nil
	}
	pos := size
	skipLast := true // the newline that ends the last record is not a boundary
	for pos > 0 {
		start := pos - int64(len(buf))
		if start < 0 {
			start = 0
		}
		chunk := buf[:pos-start]
		if _, err := f.ReadAt(chunk, start); err != nil && err != io.EOF {
			return 0, 0, err
		}
		for i := len(chunk) - 1; i >= 0; i-- {
			if chunk[i] != '\n' {
				continue
			}
			if skipLast {
				skipLast = false
				continue
			}
			if n--; n == 0 {
				return start + int64(i) + 1, 0, nil
			}
		}
		pos = start
	}
	if !skipLast {
		n-- // the first record of the file
	}
	return 0, n, nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
