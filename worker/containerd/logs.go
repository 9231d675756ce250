package containerd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/worker"
)

// Log reading limits: the reader holds at most one chunk and one partial
// line, whatever the size of the file or of its lines.
const (
	logChunk = 32 << 10
	// maxLogLine splits longer lines into several messages, as Docker does
	// at 16 KiB.
	maxLogLine = 16 << 10
	// logPoll is how often a followed log file is checked for growth.
	logPoll = 200 * time.Millisecond
)

// Logs sends the task's log lines to fn. The shim writes stdout and stderr
// into one file without timestamps (cio.LogFile), so every message has
// stream STDOUT, and lines already in the file carry the file's modification
// time (the latest they can have been written), lines seen while following
// the time they were read. Since therefore skips the file's old content as a
// whole when it was last written before Since. Data is a line with its
// newline. With Follow, Logs polls the file until ctx ends and then returns
// nil; a file that does not exist yet is waited for.
func (c *controller) Logs(ctx context.Context, opts worker.LogOptions, fn func(*api.LogMessage) error) error {
	lctx := &api.LogContext{ServiceId: c.task.GetServiceId(), NodeId: c.task.GetNodeId(), TaskId: c.id}
	if lctx.NodeId == "" {
		lctx.NodeId = c.e.cfg.NodeID
	}
	path := c.e.cfg.logPath(c.id)
	f, err := os.Open(path)
	for errors.Is(err, fs.ErrNotExist) && opts.Follow {
		if !sleepCtx(ctx, logPoll) {
			return nil
		}
		f, err = os.Open(path)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()

	r := &logReader{f: f, ctx: lctx, fn: fn}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	r.stamp = fi.ModTime()
	size := fi.Size()
	switch {
	case !opts.Since.IsZero() && fi.ModTime().Before(opts.Since):
		r.off = size
	case opts.Tail >= 0:
		if r.off, err = tailOffset(f, size, opts.Tail); err != nil {
			return err
		}
	}
	if err := r.readTo(size); err != nil {
		return err
	}
	if !opts.Follow {
		return r.flush()
	}
	for {
		if !sleepCtx(ctx, logPoll) {
			return nil
		}
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if fi.Size() < r.off { // truncated: start over
			r.off, r.partial = 0, r.partial[:0]
		}
		r.stamp = time.Now()
		if err := r.readTo(fi.Size()); err != nil {
			return err
		}
	}
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

type logReader struct {
	f       *os.File
	off     int64
	partial []byte // the start of a line whose newline has not been read
	stamp   time.Time
	ctx     *api.LogContext
	fn      func(*api.LogMessage) error
	buf     [logChunk]byte
}

// readTo reads the file from r.off up to end and emits complete lines.
func (r *logReader) readTo(end int64) error {
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
			if i < 0 {
				r.partial = append(r.partial, data...)
				data = nil
			} else {
				r.partial = append(r.partial, data[:i+1]...)
				data = data[i+1:]
				if err := r.emit(); err != nil {
					return err
				}
			}
			for len(r.partial) >= maxLogLine {
				if err := r.emitN(maxLogLine); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// flush emits a last line that has no newline.
func (r *logReader) flush() error {
	if len(r.partial) == 0 {
		return nil
	}
	return r.emit()
}

func (r *logReader) emit() error { return r.emitN(len(r.partial)) }

func (r *logReader) emitN(n int) error {
	msg := &api.LogMessage{
		Context:   r.ctx,
		Timestamp: timestamppb.New(r.stamp),
		Stream:    api.LogStream_LOG_STREAM_STDOUT,
		Data:      append([]byte(nil), r.partial[:n]...),
	}
	r.partial = append(r.partial[:0], r.partial[n:]...)
	return r.fn(msg)
}

// tailOffset returns the offset where the last n lines of the file's first
// size bytes begin, reading backwards a chunk at a time. A last line without
// a newline counts as a line.
func tailOffset(f *os.File, size, n int64) (int64, error) {
	if n == 0 {
		return size, nil
	}
	var buf [logChunk]byte
	pos := size
	skipLast := true // the newline that ends the last line is not a boundary
	for pos > 0 {
		start := pos - int64(len(buf))
		if start < 0 {
			start = 0
		}
		chunk := buf[:pos-start]
		if _, err := f.ReadAt(chunk, start); err != nil && err != io.EOF {
			return 0, err
		}
		for i := len(chunk) - 1; i >= 0; i-- {
			if chunk[i] != '\n' {
				skipLast = false
				continue
			}
			if skipLast {
				skipLast = false
				continue
			}
			if n--; n == 0 {
				return start + int64(i) + 1, nil
			}
		}
		pos = start
	}
	return 0, nil
}
