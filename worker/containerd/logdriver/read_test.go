package logdriver

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// joiner puts lines back together from their records: a line the writer
// left unfinished for PartialFlush (a test binary under load can) comes
// as a partial record and the rest.
type joiner struct {
	pending string
	lines   []string
}

func (j *joiner) add(r Record) int {
	j.pending += string(r.Line)
	if !r.Partial {
		j.lines = append(j.lines, j.pending)
		j.pending = ""
	}
	return len(j.lines)
}

// readAll returns the lines Read sends.
func readAll(t *testing.T, ctx context.Context, path string, maxFile int, opts ReadOptions) []string {
	t.Helper()
	var j joiner
	err := Read(ctx, path, maxFile, opts, func(r Record) error {
		j.add(r)
		return nil
	})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return j.lines
}

// checkRun checks that lines are "line <i>" for consecutive i from first
// to last, each exactly once and in order.
func checkRun(t *testing.T, lines []string, first, last int) {
	t.Helper()
	if len(lines) != last-first+1 {
		t.Fatalf("%d lines, want %d (%d..%d); first %q last %q", len(lines), last-first+1, first, last, head(lines), tail(lines))
	}
	for i, l := range lines {
		if want := "line " + strconv.Itoa(first+i); l != want {
			t.Fatalf("line %d is %q, want %q", i, l, want)
		}
	}
}

func head(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return l[0]
}

func tail(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return l[len(l)-1]
}

// feed writes n numbered lines to the driver and waits for it to exit.
// Each write(2) holds whole lines and at most PIPE_BUF bytes, so no line
// is ever left half-written (which the driver would flush as a partial
// record after PartialFlush, should the test stall in between).
func feed(t *testing.T, n int, args ...string) {
	t.Helper()
	cmd, out, errw, _ := shim(t, args...)
	var buf []byte
	for i := 1; i <= n; i++ {
		line := fmt.Sprintf("line %d\n", i)
		if len(buf)+len(line) > 4096 {
			if _, err := out.Write(buf); err != nil {
				t.Fatal(err)
			}
			buf = buf[:0]
		}
		buf = append(buf, line...)
	}
	if _, err := out.Write(buf); err != nil {
		t.Fatal(err)
	}
	out.Close()
	errw.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("driver exit: %v", err)
	}
}

func TestRotationKeepsEveryLine(t *testing.T) {
	// A small max-size and a large max-file: every line, once, in order,
	// read back across hundreds of files, while a follower reads along.
	const n = 20000
	path := filepath.Join(t.TempDir(), "t.cri")
	const maxFile = 1000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		followed joiner
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = Read(ctx, path, maxFile, ReadOptions{Tail: -1, Follow: true, Poll: time.Millisecond}, func(r Record) error {
			if followed.add(r) == n {
				cancel()
			}
			return nil
		})
	}()
	feed(t, n, argv(path, 4096, maxFile)...)
	lines := readAll(t, context.Background(), path, maxFile, ReadOptions{Tail: -1})
	checkRun(t, lines, 1, n)
	files := 0
	for i := 0; i < maxFile; i++ {
		fi, err := os.Stat(RotatedName(path, i))
		if err != nil {
			break
		}
		files++
		if fi.Size() > 4096 {
			t.Errorf("%s has %d bytes, more than max-size", RotatedName(path, i), fi.Size())
		}
	}
	if files < 100 {
		t.Errorf("%d files: the test did not rotate much", files)
	}
	select {
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
		cancel()
	}
	wg.Wait()
	checkRun(t, followed.lines, 1, n)

	// Tail across files.
	checkRun(t, readAll(t, context.Background(), path, maxFile, ReadOptions{Tail: 1000}), n-999, n)
	checkRun(t, readAll(t, context.Background(), path, maxFile, ReadOptions{Tail: 1}), n, n)
	if got := readAll(t, context.Background(), path, maxFile, ReadOptions{Tail: 0}); len(got) != 0 {
		t.Errorf("tail 0 gave %d lines", len(got))
	}
	checkRun(t, readAll(t, context.Background(), path, maxFile, ReadOptions{Tail: 10 * n}), 1, n)
}

func TestRotationKeepsNewestWithinBudget(t *testing.T) {
	// A small max-file: the newest lines stay, without a gap, and the
	// files hold at most max-size × max-file plus one record.
	const n, maxSize, maxFile = 20000, 8192, 3
	path := filepath.Join(t.TempDir(), "t.cri")
	feed(t, n, argv(path, maxSize, maxFile)...)
	var total int64
	for i := 0; i < maxFile+2; i++ {
		fi, err := os.Stat(RotatedName(path, i))
		if i >= maxFile {
			if err == nil {
				t.Errorf("%s exists beyond max-file", RotatedName(path, i))
			}
			continue
		}
		if err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
		total += fi.Size()
	}
	if total > maxSize*maxFile+MaxRecord {
		t.Errorf("log of %d bytes, over the budget of %d", total, maxSize*maxFile)
	}
	lines := readAll(t, context.Background(), path, maxFile, ReadOptions{Tail: -1})
	if len(lines) < 2*maxSize/60 {
		t.Fatalf("only %d lines kept", len(lines))
	}
	first, _ := strconv.Atoi(strings.TrimPrefix(lines[0], "line "))
	checkRun(t, lines, first, n)
}

func TestReadSince(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.cri")
	f, err := OpenFile(path, 500, 10)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(10000, 0)
	for i := 1; i <= 50; i++ {
		f.writeRecord(at.Add(time.Duration(i)*time.Second), Stdout, false, []byte("line "+strconv.Itoa(i)), nil)
		f.Flush()
		// Each file's time is its last record's, as the driver leaves it.
		os.Chtimes(path, at.Add(time.Duration(i)*time.Second), at.Add(time.Duration(i)*time.Second))
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	since := at.Add(30 * time.Second)
	checkRun(t, readAll(t, context.Background(), path, 10, ReadOptions{Tail: -1, Since: since}), 30, 50)
	checkRun(t, readAll(t, context.Background(), path, 10, ReadOptions{Tail: 5, Since: since}), 46, 50)
	if got := readAll(t, context.Background(), path, 10, ReadOptions{Tail: -1, Since: at.Add(time.Hour)}); len(got) != 0 {
		t.Errorf("since after the last record: %q", got)
	}
}

func TestReadSkipsDebris(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.cri")
	rec := func(s string) string {
		return string(AppendRecord(nil, Record{Time: time.Unix(5, 0), Stream: Stderr, Line: []byte(s)}))
	}
	content := rec("line 1") + "garbage\n" + strings.Repeat("x", MaxRecord+10) + "\n" + rec("line 2") + rec("line 3")[:20]
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	checkRun(t, readAll(t, context.Background(), path, 1, ReadOptions{Tail: -1}), 1, 2)
	// The unfinished last record is no line for tail either.
	checkRun(t, readAll(t, context.Background(), path, 1, ReadOptions{Tail: 1}), 2, 2)
}

func TestReadFollowWaitsForTheLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.cri")
	if got := readAll(t, context.Background(), path, 3, ReadOptions{Tail: -1}); len(got) != 0 {
		t.Fatalf("no log, yet %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan []string)
	go func() {
		var got []string
		_ = Read(ctx, path, 3, ReadOptions{Tail: -1, Follow: true, Poll: 5 * time.Millisecond}, func(r Record) error {
			got = append(got, string(r.Line))
			if len(got) == 3 {
				cancel()
			}
			return nil
		})
		done <- got
	}()
	cmd, out, errw, _ := shim(t, argv(path, 100, 3)...) // every record rotates
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(out, "line %d\n", i)
		// The thing under test: the follower is reading when each record
		// rotates the file, so the records arrive apart.
		time.Sleep(20 * time.Millisecond)
	}
	out.Close()
	errw.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	checkRun(t, <-done, 1, 3)
	_ = io.EOF
}

// Tail counts what the log holds when Read starts: lines the driver
// writes meanwhile come only with Follow.
func TestReadTailWhileWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.cri")
	f, err := OpenFile(path, 1000, 2) // about 20 records a file
	if err != nil {
		t.Fatal(err)
	}
	write := func(from, to int) {
		for i := from; i <= to; i++ {
			f.writeRecord(time.Unix(int64(i), 0), Stdout, false, []byte("line "+strconv.Itoa(i)), nil)
		}
		f.Flush()
	}
	write(1, 25)
	if _, err := os.Stat(RotatedName(path, 1)); err != nil {
		t.Fatalf("no rotated file: %v", err)
	}
	var got []string
	// The tail begins in the rotated file; while it is read, the driver
	// writes on to the current one.
	err = Read(context.Background(), path, 2, ReadOptions{Tail: 8}, func(r Record) error {
		if len(got) == 0 {
			write(26, 28)
		}
		got = append(got, string(r.Line))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, got, 18, 25)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// Rotations while Read reads (the oldest file it started in dropped, the
// next one renamed twice) change nothing in what it returns.
func TestReadTailWhileRotated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.cri")
	f, err := OpenFile(path, 1000, 3) // about 20 records a file
	if err != nil {
		t.Fatal(err)
	}
	next := 1
	write := func(k int) {
		for ; k > 0; k-- {
			f.writeRecord(time.Unix(int64(next), 0), Stdout, false, []byte("line "+strconv.Itoa(next)), nil)
			next++
		}
		f.Flush()
	}
	write(50)
	var got []string
	err = Read(context.Background(), path, 3, ReadOptions{Tail: 45}, func(r Record) error {
		if len(got) == 0 {
			write(45) // two rotations or more: the files read are renamed and dropped
		}
		got = append(got, string(r.Line))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, got, 6, 50)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
