package logdriver

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// flushAt is how many bytes of whole records the file buffers before it
// writes them; the driver also writes after every round of reads, so
// records wait for no more than that round.
const flushAt = 16 << 10

// RotatedName is the name of the i-th file of a log whose current file is
// path: path itself for 0, path.1 for the one rotated last, up to
// path.(max-file - 1) for the oldest.
func RotatedName(path string, i int) string {
	if i == 0 {
		return path
	}
	return path + "." + strconv.Itoa(i)
}

// File is a log file that rotates: when a record would take the current
// file past MaxSize, the file is renamed path.1 (path.1 becomes path.2 and
// so on, the oldest beyond path.(MaxFile-1) is dropped) and a new path is
// begun. Records are never split across files, so a file exceeds MaxSize
// only when it holds a single record larger than MaxSize.
//
// Writes are buffered up to flushAt bytes of whole records and go out with
// one write(2) each (O_APPEND, no fsync): a reader sees whole records,
// except after a failed write. A failed write loses its records and does
// not stop the file: the next Flush tries again. File is used by one
// goroutine.
type File struct {
	path    string
	maxSize int64 // 0: no limit
	maxFile int
	fd      int // -1 while no file is open
	size    int64
	rotated int // path.1 … path.rotated exist
	buf     []byte
	err     error // the first failure, reported by Close
}

// OpenFile opens (creating it and its directory) the log whose current file
// is path, for appending. maxSize 0 means no limit; maxFile is the number
// of files kept, at least 1.
func OpenFile(path string, maxSize int64, maxFile int) (*File, error) {
	if maxFile < 1 {
		maxFile = 1
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f := &File{path: path, maxSize: maxSize, maxFile: maxFile, fd: -1}
	if err := f.open(); err != nil {
		return nil, err
	}
	for f.rotated+1 < maxFile {
		if _, err := os.Lstat(RotatedName(path, f.rotated+1)); err != nil {
			break
		}
		f.rotated++
	}
	return f, nil
}

func (f *File) open() error {
	fd, err := syscall.Open(f.path, syscall.O_WRONLY|syscall.O_APPEND|syscall.O_CREAT|syscall.O_CLOEXEC, 0o640)
	if err != nil {
		return &os.PathError{Op: "open", Path: f.path, Err: err}
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return &os.PathError{Op: "stat", Path: f.path, Err: err}
	}
	f.fd, f.size = fd, st.Size
	return nil
}

// writeRecord encodes a record (see AppendRecord) and buffers it, rotating
// first when it would not fit the current file.
func (f *File) writeRecord(t time.Time, s Stream, partial bool, a, b []byte) {
	var pre [48]byte
	prefix := appendPrefix(pre[:0], t, s, partial)
	n := int64(len(prefix) + len(a) + len(b) + 1)
	if f.maxSize > 0 {
		if used := f.size + int64(len(f.buf)); used > 0 && used+n > f.maxSize {
			f.Flush()
			f.rotate()
		}
	}
	f.buf = append(f.buf, prefix...)
	f.buf = append(f.buf, a...)
	f.buf = append(f.buf, b...)
	f.buf = append(f.buf, '\n')
	if len(f.buf) >= flushAt {
		f.Flush()
	}
}

// Flush writes the buffered records.
func (f *File) Flush() {
	for len(f.buf) > 0 {
		if f.fd < 0 {
			// The last rotation could not open a new file: try again.
			if err := f.open(); err != nil {
				f.fail(err)
				f.buf = f.buf[:0]
				return
			}
		}
		n, err := syscall.Write(f.fd, f.buf)
		if err == syscall.EINTR {
			continue
		}
		if n > 0 {
			f.size += int64(n)
		}
		if err != nil || n < len(f.buf) {
			if err == nil {
				err = syscall.EIO
			}
			// ENOSPC and the like: these records are lost.
			f.fail(&os.PathError{Op: "write", Path: f.path, Err: err})
		}
		f.buf = f.buf[:0]
	}
	if cap(f.buf) > 2*flushAt+MaxRecord {
		f.buf = nil // one huge round: do not keep its buffer
	}
}

// rotate renames the files one place on and begins a new current file.
func (f *File) rotate() {
	if f.fd >= 0 {
		syscall.Close(f.fd)
		f.fd = -1
	}
	if f.maxFile == 1 {
		if err := syscall.Unlink(f.path); err != nil && err != syscall.ENOENT {
			f.fail(&os.PathError{Op: "remove", Path: f.path, Err: err})
		}
	} else {
		top := f.rotated + 1
		if top > f.maxFile-1 {
			top = f.maxFile - 1
		}
		for i := top; i >= 1; i-- {
			err := syscall.Rename(RotatedName(f.path, i-1), RotatedName(f.path, i))
			if err != nil && err != syscall.ENOENT {
				f.fail(&os.PathError{Op: "rename", Path: RotatedName(f.path, i-1), Err: err})
			}
		}
		f.rotated = top
	}
	f.size = 0
	if err := f.open(); err != nil {
		f.fail(err)
	}
}

func (f *File) fail(err error) {
	if f.err == nil {
		f.err = err
	}
}

// Close writes what is buffered, closes the file and returns the first
// failure the file met.
func (f *File) Close() error {
	f.Flush()
	if f.fd >= 0 {
		if err := syscall.Close(f.fd); err != nil {
			f.fail(err)
		}
		f.fd = -1
	}
	return f.err
}

// discard is the writer of a driver that could not open its file: the
// container's output is read and dropped, so the container never blocks.
type discard struct{}

func (discard) writeRecord(time.Time, Stream, bool, []byte, []byte) {}
