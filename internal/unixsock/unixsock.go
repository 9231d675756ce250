package unixsock

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// ErrInUse is returned (wrapped) when another process answers on the path.
var ErrInUse = errors.New("in use: another process serves it")

// probeTimeout bounds the check that nobody answers on an existing socket.
const probeTimeout = time.Second

// Listen creates the directory of path, refuses a socket another process
// answers on (ErrInUse), removes a stale one, listens, and sets mode.
func Listen(path string, mode os.FileMode) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, probeTimeout); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s is %w", path, ErrInUse)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove the old socket %s: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}
