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
// The files are opened together and checked against their names, so a
// rotation while Read starts neither repeats nor skips a file. With Follow,
// Read goes on with the current file; when the driver rotates it, Read
// finishes the file under its new name and continues with the file that
// came after it, found by identity among the rotated names. A reader that
// falls more than maxFile-1 rotations behind loses the files dropped in
// between, as Docker's does. Without any file, Read returns nil at once, or
// with Follow waits for the log to begin.
func Read(ctx context.Context, path string, maxFile int, opts ReadOptions, fn func(Record) error) error {
	if maxFile < 1 {
		maxFile = 1
	}
	if opts.Poll <= 0 {
		opts.Poll = 200 * time.Millisecond
	}
	r := &reader{path: path, maxFile: maxFile, opts: opts, fn: fn}
	files, err := r.snapshot()
	defer func() { closeAll(files) }()
	if err != nil {
		return err
	}
	for len(files) == 0 {
		if !opts.Follow || !sleepCtx(ctx, opts.Poll) {
			return nil
		}
		if files, err = r.snapshot(); err != nil {
			return err
		}
	}
	// What the files hold now is what Tail counts and what is read
	// before following: lines written meanwhile come only with Follow.
	sizes := make([]int64, len(files))
	for i, f := range files {
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		sizes[i] = fi.Size()
	}
	first, off, err := r.start(files, sizes)
	if err != nil {
		return err
	}
	for i := first; i < len(files); i++ {
		if i > first {
			off = 0
		}
		r.f, r.off, r.partial, r.skipping = files[i], off, r.partial[:0], false
		if err := r.readTo(sizes[i]); err != nil {
			return err
		}
		if i < len(files)-1 {
			files[i].Close() // done with it
			files[i] = nil
		}
	}
	if !opts.Follow {
		return nil
	}
	// Follow the newest file; the others are done.
	cur := files[len(files)-1]
	closeAll(files[:len(files)-1])
	files = files[len(files)-1:]
	for {
		if !sleepCtx(ctx, opts.Poll) {
			return nil
		}
		next, err := r.follow(cur)
		if err != nil {
			return err
		}
		for next != nil {
			cur.Close()
			cur, files[0] = next, next
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

// snapshot opens the log's files, oldest first, and checks that no
// rotation moved them meanwhile (retrying a few times; then it goes on with
// what it has).
func (r *reader) snapshot() ([]*os.File, error) {
	var files []*os.File
	for attempt := 0; ; attempt++ {
		var names []string
		for i := r.maxFile - 1; i >= 0; i-- {
			name := RotatedName(r.path, i)
			f, err := os.Open(name)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				closeAll(files)
				return nil, err
			}
			files, names = append(files, f), append(names, name)
		}
		if attempt == 4 || sameNames(files, names) {
			return files, nil
		}
		closeAll(files)
		files = nil
	}
}

func closeAll(files []*os.File) {
	for i, f := range files {
		if f != nil {
			f.Close()
			files[i] = nil
		}
	}
}

// sameNames tells whether each file is still the one its name names.
func sameNames(files []*os.File, names []string) bool {
	for i, f := range files {
		a, err := f.Stat()
		if err != nil {
			return false
		}
		b, err := os.Stat(names[i])
		if err != nil || !os.SameFile(a, b) {
			return false
		}
	}
	return true
}

// start finds where reading begins: with Tail, the file and offset of the
// Tail-th record from the end; with Since alone, the first file written
// to at or after Since (older files hold only older records).
func (r *reader) start(files []*os.File, sizes []int64) (int, int64, error) {
	if r.opts.Tail >= 0 {
		n := r.opts.Tail
		for i := len(files) - 1; i >= 0; i-- {
			off, left, err := tailOffset(files[i], sizes[i], n, &r.buf)
			if err != nil {
				return 0, 0, err
			}
			if left == 0 {
				return i, off, nil
			}
			n = left
		}
		return 0, 0, nil
	}
	if !r.opts.Since.IsZero() {
		for i, f := range files {
			fi, err := f.Stat()
			if err != nil {
				return 0, 0, err
			}
			if !fi.ModTime().Before(r.opts.Since) {
				return i, 0, nil
			}
		}
		return len(files) - 1, 0, nil
	}
	return 0, 0, nil
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
