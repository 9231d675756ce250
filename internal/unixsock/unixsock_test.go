package unixsock

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestListen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "x.sock")
	l, err := Listen(path, 0o660)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v %v", fi, err)
	}
	// A live socket is not taken over.
	if _, err := Listen(path, 0o660); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen on a live socket: %v", err)
	}
	if c, err := net.Dial("unix", path); err != nil {
		t.Fatalf("the first listener lost its socket: %v", err)
	} else {
		c.Close()
	}
	// A stale one (its listener gone, the file left) is replaced.
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	ul.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the stale socket file should remain for this test: %v", err)
	}
	l2, err := Listen(path, 0o600)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l2.Close()
	// A path whose directory cannot be made.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(filepath.Join(file, "x.sock"), 0o660); err == nil {
		t.Fatal("Listen under a regular file succeeded")
	}
}
