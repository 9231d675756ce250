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
	"github.com/shoal-project/shoal/worker/containerd/logdriver"
)

// Log reading limits: the reader holds at most one chunk and one partial
// line, whatever the size of the file or of its lines.
const (
	logChunk = 32 << 10
	// maxLogLine splits longer lines into several messages, as Docker does
	// at 16 KiB.
	maxLogLine = logdriver.MaxLine
	// logPoll is how often a followed log file is checked for growth.
	logPoll = 200 * time.Millisecond
)

// Logs sends the task's log lines to fn, from whichever files the task
// has (see taskLog).
//
// A task whose log driver is json-file or local has records (logdriver's
// format) in rotated files: each message carries the line's stream and the
// time the driver read it; Since drops records older than Since; Tail
// counts records (a line longer than 16 KiB is several) across the files,
// and Since then filters those; Follow goes on across rotations
// (logdriver.Read). A record that does not decode (debris of a crash or a
// full disk) is skipped, as is, unless following, a last one still being
// written.
//
// A task whose log driver is none has no log: Logs returns
// ErrLogsDisabled.
//
// A task started without a driver binary, or before shoal had one, has the
// shim's plain file (cio.LogFile): stdout and stderr mixed, so every
// message has stream STDOUT, and lines already in the file carry the file's
// modification time (the latest they can have been written), lines seen
// while following the time they were read. Since therefore skips the
// file's old content as a whole when it was last written before Since;
// otherwise Tail counts lines, and a line longer than 16 KiB is sent as
// several messages.
//
// Data is a line with its newline; a piece of a line (a partial record, a
// long plain line's first pieces, output that ended without a newline) has
// none. With Follow, Logs polls the files until ctx ends and then returns
// nil; a log that does not exist yet is waited for.
func (c *controller) Logs(ctx context.Context, opts worker.LogOptions, fn func(*api.LogMessage) error) error {
	lctx := &api.LogContext{ServiceId: c.task.GetServiceId(), NodeId: c.task.GetNodeId(), TaskId: c.id}
	if lctx.NodeId == "" {
		lctx.NodeId = c.e.cfg.NodeID
	}
	tl, found, err := c.taskLog()
	// A task not prepared yet: with Follow, wait until it says where its
	// log is (or an older task's file appears).
	for err == nil && !found && opts.Follow && !exists(tl.Path) {
		if !sleepCtx(ctx, logPoll) {
			return nil
		}
		tl, found, err = c.taskLog()
	}
	if err != nil {
		return err
	}
	switch tl.Kind {
	case logNone:
		return ErrLogsDisabled
	case logRecords:
		ro := logdriver.ReadOptions{Since: opts.Since, Tail: opts.Tail, Follow: opts.Follow, Poll: logPoll}
		return logdriver.Read(ctx, tl.Path, tl.MaxFile, ro, func(rec logdriver.Record) error {
			stream := api.LogStream_LOG_STREAM_STDOUT
			if rec.Stream == logdriver.Stderr {
				stream = api.LogStream_LOG_STREAM_STDERR
			}
			return fn(&api.LogMessage{Context: lctx, Timestamp: timestamppb.New(rec.Time), Stream: stream, Data: rec.Data()})
		})
	}
	return c.plainLogs(ctx, tl.Path, opts, lctx, fn)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// plainLogs reads the shim's plain file at path.
func (c *controller) plainLogs(ctx context.Context, path string, opts worker.LogOptions, lctx *api.LogContext, fn func(*api.LogMessage) error) error {
	var f *os.File
	for {
		var err error
		f, err = os.Open(path)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if !opts.Follow || !sleepCtx(ctx, logPoll) {
			return nil
		}
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

// logReader reads a plain log file (cio.LogFile's).
type logReader struct {
	f       *os.File
	off     int64
	partial []byte    // the start of a line whose newline has not been read
	stamp   time.Time // the time given to lines
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
			piece := data
			if i >= 0 {
				piece, data = data[:i+1], data[i+1:]
			} else {
				data = nil
			}
			r.partial = append(r.partial, piece...)
			if i >= 0 {
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
