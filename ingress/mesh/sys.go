package mesh

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/shoal-project/shoal/ingress/internal/nftconn"
)

// withConn runs f with an nftables connection into the namespace at path
// ("" = the caller's).
func withConn(netnsPath string, f func(c *nftables.Conn) error) error {
	fd := -1
	if netnsPath != "" {
		ns, err := netns.GetFromPath(netnsPath)
		if err != nil {
			return fmt.Errorf("mesh: open network namespace %s: %w (does the namespace still exist?)", netnsPath, err)
		}
		defer ns.Close()
		fd = int(ns)
	}
	c, err := nftconn.New(fd)
	if err != nil {
		return fmt.Errorf("mesh: nftables connection into %s: %w", nsName(netnsPath), err)
	}
	return f(c)
}

// handle opens a netlink handle for the given protocols in the namespace at
// path ("" = the caller's).
func handle(netnsPath string, protos ...int) (*netlink.Handle, error) {
	if netnsPath == "" {
		h, err := netlink.NewHandle(protos...)
		if err != nil {
			return nil, fmt.Errorf("mesh: netlink handle: %w", err)
		}
		return h, nil
	}
	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return nil, fmt.Errorf("mesh: open network namespace %s: %w (does the namespace still exist?)", netnsPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, protos...)
	if err != nil {
		return nil, fmt.Errorf("mesh: netlink handle in %s: %w", netnsPath, err)
	}
	return h, nil
}

// inNetns runs f on an OS thread switched into the namespace at path ("" =
// no switch), then switches back. If switching back fails, the thread stays
// locked and is discarded with its goroutine.
func inNetns(path string, f func() error) error {
	if path == "" {
		return f()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("mesh: current network namespace: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromPath(path)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("mesh: open network namespace %s: %w (does the namespace still exist?)", path, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("mesh: enter network namespace %s: %w", path, err)
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("mesh: return from network namespace %s: %w", path, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// setSysctl writes value to /proc/sys/<key> as seen from the namespace at
// netnsPath, if it is not already that value.
func setSysctl(netnsPath, key, value string) error {
	return inNetns(netnsPath, func() error {
		p := "/proc/sys/" + key
		if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == value {
			return nil
		}
		if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
			return fmt.Errorf("mesh: set %s=%s in %s: %w", strings.ReplaceAll(key, "/", "."), value, nsName(netnsPath), err)
		}
		return nil
	})
}

// EnableLocalhost makes the published ports answer on 127.0.0.1 from the
// node itself: it sets net.ipv4.conf.<if>.route_localnet=1 on each of
// ifNames in the namespace at netnsPath ("" = the caller's). Pass the
// node's own interfaces into the overlays (the veths holding the node's
// overlay addresses), since a DNATed 127.0.0.1 connection leaves through
// them. Without it the kernel refuses to route a packet with a loopback
// source off the host and such connections hang (verified on kernel 6.18).
// The table Apply installs masquerades these connections to the node's
// overlay address (backends never see 127.0.0.1) and drops 127.0.0.0/8
// arriving on any interface but lo, which route_localnet would otherwise
// accept. Call it after the interfaces exist; it is idempotent.
func EnableLocalhost(netnsPath string, ifNames ...string) error {
	for _, n := range ifNames {
		if n == "" || strings.ContainsAny(n, "/.") || n == "all" || n == "default" {
			return fmt.Errorf("mesh: enable localhost: %q is not an interface name", n)
		}
		if err := setSysctl(netnsPath, "net/ipv4/conf/"+n+"/route_localnet", "1"); err != nil {
			return err
		}
	}
	return nil
}

// FlushConntrack deletes, in the namespace at netnsPath ("" = the
// caller's), the TCP and UDP conntrack entries whose reply source is
// backend: the flows the mesh DNATed to it (and any direct flow to it), so
// the next packet of such a flow is balanced again over the current
// backends instead of going to a removed task. Call it on every node after
// an Apply that dropped the backend.
func FlushConntrack(netnsPath string, backend netip.Addr) error {
	if !backend.IsValid() || !backend.Is4() {
		return fmt.Errorf("mesh: flush conntrack: backend %q is not an IPv4 address", backend)
	}
	h, err := handle(netnsPath, unix.NETLINK_NETFILTER)
	if err != nil {
		return err
	}
	defer h.Close()
	var filters []netlink.CustomConntrackFilter
	for _, proto := range []uint8{unix.IPPROTO_TCP, unix.IPPROTO_UDP} {
		f := &netlink.ConntrackFilter{}
		if err := errors.Join(f.AddProtocol(proto), f.AddIP(netlink.ConntrackReplySrcIP, net.IP(backend.AsSlice()))); err != nil {
			return fmt.Errorf("mesh: conntrack filter: %w", err)
		}
		filters = append(filters, f)
	}
	if _, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, filters...); err != nil {
		return fmt.Errorf("mesh: delete conntrack flows to %s in %s: %w", backend, nsName(netnsPath), err)
	}
	return nil
}
