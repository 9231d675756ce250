// Package logdriver is the log driver of shoal's containers and the reader
// of what it writes.
//
// # Process model
//
// The executor creates a task's process with cio.BinaryIO(binary,
// Args(path, maxSize, maxFile)), where binary is cmd/shoal-logdriver, whose
// main calls Main. The containerd shim runs it with the container's stdout
// and stderr pipes on fds 3 and 4 and a readiness pipe on fd 5 (the
// contract of containerd's runtime/v2/logging), and an environment of
// CONTAINER_ID and CONTAINER_NAMESPACE only. The driver first executes
// itself again with GOMAXPROCS=1 (same pid, same fds), opens the log,
// signals readiness by closing fd 5, then copies until both pipes are
// closed, which the shim does when the task is deleted. It ignores SIGTERM,
// which the shim sends right after closing its ends of the pipes: what the
// container wrote last is still read, and the end of both pipes comes as
// soon as the container's processes are gone (the shim kills the driver
// after 12 seconds otherwise). The driver is the shim's child, not
// shoald's: it keeps writing while shoald restarts or is down.
//
// If the log cannot be opened the driver still drains the pipes (to
// nowhere), so the container neither blocks on a full pipe nor dies of
// SIGPIPE; a write that fails (a full disk) loses its records and the
// driver goes on. It exits 1 in both cases, 0 otherwise.
//
// # Memory
//
// One driver runs per task, so it is kept small: it imports the standard
// library only (cmd/shoal-logdriver's test checks its dependency graph),
// reads both pipes with one goroutine around an epoll loop (no thread per
// blocked read), into one global buffer, and holds at most one unfinished
// line per stream and 16 KiB plus one record of output not yet written.
// About 0.6 MiB PSS per driver (BENCHMARKS.md).
//
// # Format
//
// The file is in the CRI log format (see AppendRecord): one record per
// line, "<time> <stream> <F|P> <line>", the time being when the driver
// read the line. A line longer than MaxLine is split into records of
// MaxLine bytes marked P (partial), the last piece F; a line left
// unfinished for PartialFlush, or at the end of the output, is written as
// a P record too (its continuation follows). Records go out in the order
// the driver read them, whole, with one write(2) (O_APPEND, no fsync) per
// round of reads or per 16 KiB.
//
// # Rotation
//
// With a max-size, a record that would take the current file past it
// first rotates the files (File): path.(max-file-2) becomes
// path.(max-file-1), dropping the oldest, …, path becomes path.1, and a new
// path is begun; with max-file 1 the file is removed and begun again. A
// record is never split across files: a file exceeds max-size only when it
// holds a single record larger than max-size, so a log takes at most
// max-size × max-file bytes (plus, for a tiny max-size, one record per
// file).
//
// # Reading
//
// Read returns the records of the files, oldest first, with Tail, Since
// and Follow (across rotations); see its doc. It is used by shoald, not by
// the driver.
//
// # Concurrency
//
// The driver is single-threaded. Read may run in any number of goroutines
// and processes at once, beside the driver.
package logdriver
