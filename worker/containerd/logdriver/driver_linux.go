package logdriver

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// The file descriptors the shim hands the driver (containerd's
// runtime/v2/logging contract).
const (
	fdStdout = 3
	fdStderr = 4
	fdReady  = 5
)

// readChunk is the most the driver reads from a pipe at once.
const readChunk = 32 << 10

// Main runs the driver as the shim starts it; args are the command line
// after the program name (see Args). It never returns: the process exits 0
// once both pipes are closed and written out, 1 when the log could not be
// written (the output was still read, so the container never blocked), 2
// on a wrong command line.
func Main(args []string) {
	oneProc()
	c, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "usage: %s path /abs/file.log [max-size BYTES] [max-file N] (started by the containerd shim): %v\n",
			filepath.Base(os.Args[0]), err)
		os.Exit(2)
	}
	// The shim sends SIGTERM right after closing its ends of the pipes,
	// when what the container wrote last may still be in them. The driver
	// reads on to the end of both pipes, which comes as soon as the
	// container's processes are gone, and exits then (the shim kills it
	// after 12 seconds if a pipe stays open).
	signal.Ignore(syscall.SIGTERM)
	if err := run(c, fdStdout, fdStderr, fdReady, time.Now); err != nil {
		fmt.Fprintf(os.Stderr, "log driver: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// oneProc makes the Go runtime run the driver with one P: the shim
// starts the driver without GOMAXPROCS, and the runtime would otherwise
// set up a P, with its caches, per CPU of the machine. The variable must be
// set before the runtime starts, so the driver executes itself again with
// it (same pid, same file descriptors). An explicit GOMAXPROCS is left
// alone; if the exec fails, the driver runs as it is.
func oneProc() {
	if _, set := os.LookupEnv("GOMAXPROCS"); set {
		return
	}
	_ = syscall.Exec("/proc/self/exe", os.Args, append(os.Environ(), "GOMAXPROCS=1"))
}

// readBuf is the driver's one read buffer (a global, so it costs no heap).
var readBuf [readChunk]byte

// run opens the log, signals readiness by closing ready, then copies both
// pipes into records until both end. It uses no goroutine: one epoll loop
// reads whichever pipe has data, and its timeout writes unfinished lines
// when they are due.
func run(c config, stdout, stderr, ready int, now func() time.Time) error {
	var w recordWriter = discard{}
	f, openErr := OpenFile(c.path, c.maxSize, c.maxFile)
	if openErr == nil {
		w = f
	}
	syscall.Close(ready)
	err := copyPipes(w, stdout, stderr, now)
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if openErr != nil {
		return openErr
	}
	return err
}

// flusher is a recordWriter with a buffer to write out after each round.
type flusher interface{ Flush() }

func copyPipes(w recordWriter, stdout, stderr int, now func() time.Time) error {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll: %w", err)
	}
	defer syscall.Close(epfd)
	p := &splitter{w: w}
	open := 0
	for _, fs := range []struct {
		fd int
		s  Stream
	}{{stdout, Stdout}, {stderr, Stderr}} {
		if fs.fd < 0 {
			continue
		}
		if err := syscall.SetNonblock(fs.fd, true); err != nil {
			return fmt.Errorf("%v: %w", fs.s, err)
		}
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fs.fd)}
		if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, fs.fd, &ev); err != nil {
			return fmt.Errorf("%v: %w", fs.s, err)
		}
		open++
	}
	var events [2]syscall.EpollEvent
	var next time.Time // when an unfinished line is due
	for open > 0 {
		timeout := -1
		if !next.IsZero() {
			d := next.Sub(now())
			timeout = int((d + time.Millisecond - 1) / time.Millisecond)
			if timeout < 0 {
				timeout = 0
			}
		}
		n, err := syscall.EpollWait(epfd, events[:], timeout)
		if err != nil {
			if err != syscall.EINTR {
				// Cannot happen with a valid epoll fd; never spin.
				time.Sleep(10 * time.Millisecond)
			}
			continue
		}
		t := now()
		var busy [2]bool
		for _, ev := range events[:n] {
			s := Stdout
			if int(ev.Fd) == stderr {
				s = Stderr
			}
			r, err := syscall.Read(int(ev.Fd), readBuf[:])
			switch {
			case r > 0:
				p.feed(s, readBuf[:r], t)
				busy[s-1] = true
			case err == syscall.EAGAIN || err == syscall.EINTR:
			default: // end of the stream, or a read error that ends it
				p.flush(s, t)
				_ = syscall.EpollCtl(epfd, syscall.EPOLL_CTL_DEL, int(ev.Fd), nil)
				syscall.Close(int(ev.Fd))
				open--
			}
		}
		// A due line kept for a busy stream leaves next in the past: the
		// next wait does not block, and writes it if no more data came.
		next = p.flushDue(now(), busy)
		if fl, ok := w.(flusher); ok {
			fl.Flush()
		}
	}
	return nil
}
