// Package logdriver is the log driver of shoal's containers: a process the
// containerd shim starts beside each task (cio.BinaryIO), which reads the
// container's stdout and stderr and appends one record per line, with the
// time it was read and its stream, to the task's log file.
//
// # Process model
//
// The executor creates a task's process with
// cio.BinaryIO(driver, Args(path)), where driver is a binary whose main
// calls Main when its first argument is Command (shoald does: `shoald
// log-driver PATH` is its hidden driver mode). The shim runs
// `driver log-driver PATH` with the container's stdout and stderr pipes on
// fds 3 and 4 and a readiness pipe on fd 5 (containerd's
// core/runtime/v2/logging.Run hands them over). The driver opens PATH for
// appending, signals readiness, and copies until both pipes are closed,
// which the shim does when the task is deleted (it then sends SIGTERM,
// waits for the driver's exit, and kills it after 12 seconds); on SIGTERM
// the driver drains the pipes for up to DrainGrace more. The driver is the shim's child, not
// shoald's: it keeps writing while shoald restarts or is down.
//
// If PATH cannot be opened the driver still drains the pipes (to nowhere),
// so the container neither blocks on a full pipe nor dies of SIGPIPE.
//
// # Format
//
// The file is in the CRI log format (see AppendRecord): one record per
// line, "<time> <stream> <F|P> <line>". A line longer than MaxLine is
// split into records of MaxLine bytes marked P (partial), the last piece F;
// a line left unfinished for PartialFlush, or at the end of the output, is
// written as a P record too (its continuation follows). The records of one
// read of a pipe are stamped and written with one write(2) (O_APPEND,
// without fsync) under a lock the two streams share, so the file is in
// time order.
package logdriver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/runtime/v2/logging"
)

// Command is the first argument that puts a binary in driver mode; Args
// makes the shim pass it.
const Command = "log-driver"

// DrainGrace is how long the driver keeps reading after SIGTERM, waiting
// for the pipes to close, before it exits anyway.
const DrainGrace = 5 * time.Second

// readChunk is the most the driver reads from a pipe at once.
const readChunk = 32 << 10

// Args returns the arguments for cio.BinaryIO that make the shim run
// `binary log-driver path`. The shim turns each key and value of the map
// into two arguments, in map order: there is one key, so the order is
// fixed.
func Args(path string) map[string]string {
	return map[string]string{Command: path}
}

// Main runs the driver as the shim starts it; args are the arguments after
// Command (the log file's absolute path). It never returns: the process
// exits 0 once both pipes are closed and written out, 1 on an error, 2 on a
// wrong command line.
func Main(args []string) {
	if len(args) != 1 || !filepath.IsAbs(args[0]) {
		fmt.Fprintf(os.Stderr, "usage: %s %s /absolute/path.log (started by the containerd shim)\n", filepath.Base(os.Args[0]), Command)
		os.Exit(2)
	}
	path := args[0]
	logging.Run(func(ctx context.Context, cfg *logging.Config, ready func() error) error {
		return run(ctx, path, cfg.Stdout, cfg.Stderr, ready)
	})
}

// run is the driver: open, signal readiness, copy until the pipes close or
// DrainGrace after ctx ends.
func run(ctx context.Context, path string, stdout, stderr io.Reader, ready func() error) error {
	var w io.Writer = io.Discard
	f, openErr := openLog(path)
	if openErr == nil {
		w = f
	}
	if err := ready(); err != nil {
		// The shim reads fd 5 until it is closed; a failed close leaves
		// it waiting for our exit, which is no worse. Carry on.
		fmt.Fprintf(os.Stderr, "log driver: signal ready: %v\n", err)
	}
	done := make(chan error, 1)
	go func() { done <- Copy(w, stdout, stderr, time.Now) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		t := time.NewTimer(DrainGrace)
		defer t.Stop()
		select {
		case err = <-done:
		case <-t.C:
			err = fmt.Errorf("the container's pipes stayed open %v after SIGTERM", DrainGrace)
		}
	}
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	return errors.Join(openErr, err)
}

func openLog(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
}

// Copy reads stdout and stderr until both end, and writes their lines to w
// as records (see AppendRecord). Each read of a pipe is split, stamped with
// now() and written in one w.Write under a lock shared by the streams, so
// w sees whole records, in time order across the streams. An error of w
// does not stop the copy (the container must not block on a full pipe):
// records that fail to be written are lost, and the first such error is
// returned at the end with any read error. A nil reader is skipped.
func Copy(w io.Writer, stdout, stderr io.Reader, now func() time.Time) error {
	k := &sink{w: w, now: now}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, r := range []io.Reader{stdout, stderr} {
		if r == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = copyStream(r, Stream(i+1), k)
		}()
	}
	wg.Wait()
	k.mu.Lock()
	defer k.mu.Unlock()
	return errors.Join(errs[0], errs[1], k.err)
}

// sink is the log file, shared by the streams.
type sink struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
	err error // the first write error
}

// emit writes what encode makes of the current time, under the lock.
func (k *sink) emit(encode func(t time.Time) []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	b := encode(k.now())
	if len(b) == 0 {
		return
	}
	if _, err := k.w.Write(b); err != nil && k.err == nil {
		k.err = err
	}
}

// splitter turns one pipe's output into records. It holds at most one
// read and one unfinished line (at most MaxLine bytes between reads). An
// unfinished line that gets no more data for PartialFlush is written as a
// partial record, so a prompt or a progress bar shows without waiting for
// its newline (or for the task's deletion, when the shim closes the pipes).
type splitter struct {
	stream Stream
	sink   *sink

	mu    sync.Mutex // held while feeding and flushing; before sink.mu
	line  []byte     // the unfinished line
	out   []byte     // encoding buffer
	due   time.Time  // when the unfinished line is written as it is
	timer *time.Timer
}

// PartialFlush is how long an unfinished line waits for more data before
// it is written as a partial record.
const PartialFlush = 500 * time.Millisecond

func copyStream(r io.Reader, s Stream, k *sink) error {
	p := &splitter{stream: s, sink: k}
	buf := make([]byte, readChunk)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			p.feed(buf[:n])
		}
		if err != nil {
			p.mu.Lock()
			if p.timer != nil {
				p.timer.Stop()
			}
			p.flushLocked()
			p.mu.Unlock()
			if errors.Is(err, io.EOF) || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read %v: %w", s, err)
		}
	}
}

// feed splits one read into records and writes them at once.
func (p *splitter) feed(data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sink.emit(func(t time.Time) []byte {
		p.out = p.out[:0]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				p.line, data = append(p.line, data...), nil
			} else {
				p.line, data = append(p.line, data[:i]...), data[i+1:]
			}
			for len(p.line) > MaxLine {
				p.out = AppendRecord(p.out, Record{Time: t, Stream: p.stream, Partial: true, Line: p.line[:MaxLine]})
				p.line = p.line[:copy(p.line, p.line[MaxLine:])]
			}
			if i >= 0 {
				p.out = AppendRecord(p.out, Record{Time: t, Stream: p.stream, Line: p.line})
				p.line = p.line[:0]
			}
		}
		return p.out
	})
	if len(p.line) > 0 {
		p.due = time.Now().Add(PartialFlush)
		if p.timer == nil {
			p.timer = time.AfterFunc(PartialFlush, p.onTimer)
		} else {
			p.timer.Reset(PartialFlush)
		}
	}
}

func (p *splitter) onTimer() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.line) == 0 {
		return
	}
	// A timer that fired while feed held the lock finds a newer line.
	if d := time.Until(p.due); d > 0 {
		p.timer.Reset(d)
		return
	}
	p.flushLocked()
}

// flushLocked writes the unfinished line as a partial record.
func (p *splitter) flushLocked() {
	if len(p.line) == 0 {
		return
	}
	p.sink.emit(func(t time.Time) []byte {
		p.out = AppendRecord(p.out[:0], Record{Time: t, Stream: p.stream, Partial: true, Line: p.line})
		return p.out
	})
	p.line = p.line[:0]
}
