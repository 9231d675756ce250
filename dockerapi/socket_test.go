package dockerapi

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/shoal-project/shoal/internal/testutil"
)

// ownGroup is a group other than the process's own that this process may
// give a file to: any group for root, else a supplementary group.
func ownGroup(t *testing.T) (name string, gid int) {
	t.Helper()
	var gids []int
	if os.Geteuid() == 0 {
		for _, n := range []string{"nogroup", "daemon", "users", "adm"} {
			if g, err := user.LookupGroup(n); err == nil {
				id, _ := strconv.Atoi(g.Gid)
				gids = append(gids, id)
			}
		}
	} else {
		gids, _ = os.Getgroups()
	}
	for _, id := range gids {
		if id == os.Getegid() {
			continue
		}
		if g, err := user.LookupGroupId(strconv.Itoa(id)); err == nil {
			return g.Name, id
		}
	}
	if testutil.Strict() {
		t.Fatalf("no group other than %d to give the socket to (as root: none of nogroup, daemon, users, adm exists)", os.Getegid())
	}
	t.Skip("no group other than the process's own to give the socket to")
	return "", 0
}

// serveSocket runs a server on a fresh socket with the group and returns
// the socket's mode and group once it listens.
func serveSocket(t *testing.T, group string) (os.FileMode, int) {
	t.Helper()
	dir, err := os.MkdirTemp("", "dockerapi") // short: socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "docker.sock")
	serveUntilEnd(t, Config{Socket: sock, SocketGroup: group, Version: "t"})
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode(), int(fi.Sys().(*syscall.Stat_t).Gid)
}

// The socket is 0660 and belongs to Config.SocketGroup when that group
// exists ("shoal" in shoald), so that the group's members may use it.
func TestUnixSocketGroup(t *testing.T) {
	name, gid := ownGroup(t)
	mode, got := serveSocket(t, name)
	if mode&os.ModeSocket == 0 || mode.Perm() != 0o660 {
		t.Errorf("socket mode %v, want a socket with 0660", mode)
	}
	if got != gid {
		t.Errorf("socket group %d, want %d (%s)", got, gid, name)
	}
}

// Without that group the socket keeps the process's group: still 0660,
// and the server serves.
func TestUnixSocketNoSuchGroup(t *testing.T) {
	mode, got := serveSocket(t, "shoal-test-no-such-group")
	if mode.Perm() != 0o660 {
		t.Errorf("socket mode %v, want 0660", mode)
	}
	if got != os.Getegid() {
		t.Errorf("socket group %d, want the process's %d", got, os.Getegid())
	}
}
