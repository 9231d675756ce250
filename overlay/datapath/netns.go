package datapath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/shoal-project/shoal/errdefs"
)

// nsfsMagic is NSFS_MAGIC, the filesystem type of a bound namespace file.
const nsfsMagic = 0x6e736673

// isNsfs reports whether path is a bound network namespace.
func isNsfs(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == nsfsMagic
}

// createNetns makes a new network namespace bound at path, so it lives until
// removeNetns whatever processes come and go. A namespace already bound
// there is kept.
func createNetns(path string) error {
	if isNsfs(path) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create namespace directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("create namespace file: %w", err)
	}
	_ = f.Close()

	errc := make(chan error, 1)
	go func() {
		// unshare moves only this locked OS thread into the new namespace.
		// It returns to its namespace before being unlocked; if that fails
		// it stays locked and the runtime ends the thread with the
		// goroutine, so no other code runs in the wrong namespace.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		merr := unix.Mount(src, path, "none", unix.MS_BIND, "")
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(merr, fmt.Errorf("return to the original namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		if merr != nil {
			merr = fmt.Errorf("bind mount %s: %w", path, merr)
		}
		errc <- merr
	}()
	if err := <-errc; err != nil {
		_ = os.Remove(path)
		return err
	}
	return nil
}

// removeNetns unbinds and removes a namespace file; a missing one is fine.
func removeNetns(path string) error {
	for isNsfs(path) {
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount namespace %s: %w", path, err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove namespace file %s: %w", path, err)
	}
	return nil
}

// nsHandle opens a netlink handle inside the namespace bound at path. The
// caller closes both.
func nsHandle(path string) (netns.NsHandle, *netlink.Handle, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return 0, nil, fmt.Errorf("open namespace %s: %w", path, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return 0, nil, fmt.Errorf("netlink in namespace %s: %w", path, err)
	}
	return ns, h, nil
}

// isNotFound reports a missing link.
func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// linkList lists links, retrying a dump the kernel interrupted.
func linkList(h *netlink.Handle) ([]netlink.Link, error) {
	var err error
	for i := 0; i < 5; i++ {
		var ls []netlink.Link
		ls, err = h.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return ls, err
		}
	}
	return nil, err
}

// neighList lists neighbour (or, with AF_BRIDGE, FDB) entries of a link,
// retrying an interrupted dump.
func neighList(h *netlink.Handle, index, family int) ([]netlink.Neigh, error) {
	var err error
	for i := 0; i < 5; i++ {
		var ns []netlink.Neigh
		ns, err = h.NeighList(index, family)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return ns, err
		}
	}
	return nil, err
}

// networkHandle opens the namespace of a network that must exist on this
// node, for an operation named by what ("attach to network X"), which
// prefixes the errors. The caller closes both handles.
func (d *Datapath) networkHandle(netID, what string) (netns.NsHandle, *netlink.Handle, error) {
	path := d.NetnsPath(netID)
	if !isNsfs(path) {
		return 0, nil, errdefs.FailedPrecondition("%s: the network does not exist on this node; call EnsureNetwork first", what)
	}
	ns, h, err := nsHandle(path)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", what, err)
	}
	return ns, h, nil
}
