package logdriver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func fileSizes(t *testing.T, path string, maxFile int) []int64 {
	t.Helper()
	var sizes []int64
	for i := 0; i < maxFile+2; i++ {
		fi, err := os.Stat(RotatedName(path, i))
		if err != nil {
			sizes = append(sizes, -1)
			continue
		}
		sizes = append(sizes, fi.Size())
	}
	return sizes
}

func TestFileRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "t.cri")
	f, err := OpenFile(path, 1000, 3)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1000, 0)
	line := []byte(strings.Repeat("x", 59)) // records of 100 bytes
	for i := 0; i < 25; i++ {
		f.writeRecord(at, Stdout, false, line, nil)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// 25 records of 100 bytes, 10 per file: t.cri.2 was dropped once.
	got := fmt.Sprint(fileSizes(t, path, 3))
	if want := "[500 1000 1000 -1 -1]"; got != want {
		t.Errorf("sizes %s, want %s", got, want)
	}
	// A record larger than max-size gets a file of its own.
	f, err = OpenFile(path, 1000, 3)
	if err != nil {
		t.Fatal(err)
	}
	f.writeRecord(at, Stderr, false, []byte(strings.Repeat("y", 1500)), nil)
	f.writeRecord(at, Stderr, false, line, nil)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(fileSizes(t, path, 3)), "[100 1541 500 -1 -1]"; got != want {
		t.Errorf("sizes %s, want %s", got, want)
	}
}

func TestFileMaxFileOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.cri")
	f, err := OpenFile(path, 1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 15; i++ {
		f.writeRecord(time.Unix(1, 0), Stdout, false, []byte(strings.Repeat("x", 59)), nil)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(fileSizes(t, path, 1)), "[500 -1 -1]"; got != want {
		t.Errorf("sizes %s, want %s", got, want)
	}
}

func TestFileWriteErrorsDoNotStop(t *testing.T) {
	if os.Geteuid() == 0 {
		// root ignores permissions; use a full device instead.
		if _, err := os.Stat("/dev/full"); err != nil {
			t.Skip("no /dev/full")
		}
	}
	f := &File{path: "/dev/full", fd: -1, maxFile: 1}
	if err := f.open(); err != nil {
		t.Skipf("open /dev/full: %v", err)
	}
	f.size = 0
	for i := 0; i < 3; i++ {
		f.writeRecord(time.Unix(1, 0), Stdout, false, []byte("lost"), nil)
		f.Flush()
	}
	if err := f.Close(); err == nil || !strings.Contains(err.Error(), "no space") {
		t.Errorf("Close = %v, want the ENOSPC of the writes", err)
	}
}
