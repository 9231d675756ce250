package datapath

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/shoal-project/shoal/errdefs"
)

// Datapath programs the overlay networks of one node. See the package doc
// for what it builds and its concurrency contract.
type Datapath struct {
	cfg Config

	mu     sync.Mutex
	home   netns.NsHandle  // the daemon's namespace (the thread that called New)
	hh     *netlink.Handle // netlink in home
	mtus   map[string]int  // network ID -> MTU, as last ensured or read
	closed bool
}

// New returns a Datapath whose daemon namespace is the calling thread's
// network namespace. It creates StateDir/netns if needed and changes nothing
// else; call Close when done.
func New(cfg Config) (*Datapath, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, "netns"), 0o755); err != nil {
		return nil, fmt.Errorf("datapath: state directory %s: %w", cfg.StateDir, err)
	}
	home, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("datapath: open the current network namespace: %w", err)
	}
	hh, err := netlink.NewHandleAt(home)
	if err != nil {
		home.Close()
		return nil, fmt.Errorf("datapath: netlink in the current namespace: %w", err)
	}
	return &Datapath{cfg: cfg, home: home, hh: hh, mtus: map[string]int{}}, nil
}

// Close releases the handles on the daemon's namespace. It leaves every
// network as it is (a restarted daemon adopts them).
func (d *Datapath) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.hh.Close()
	return d.home.Close()
}

func (d *Datapath) check() error {
	if d.closed {
		return errdefs.FailedPrecondition("datapath is closed")
	}
	return nil
}

// NetnsPath is the file the network's namespace is bound to (whether or not
// it exists yet).
func (d *Datapath) NetnsPath(netID string) string {
	return filepath.Join(d.cfg.StateDir, "netns", netID)
}

// MTU is the network's MTU as last ensured, or as found on its bridge; 0
// when the network does not exist on this node.
func (d *Datapath) MTU(netID string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if m, ok := d.mtus[netID]; ok {
		return m
	}
	if d.closed || validID(netID) != nil || !isNsfs(d.NetnsPath(netID)) {
		return 0
	}
	ns, h, err := nsHandle(d.NetnsPath(netID))
	if err != nil {
		return 0
	}
	defer ns.Close()
	defer h.Close()
	br, err := h.LinkByName(bridgeName)
	if err != nil {
		return 0
	}
	d.mtus[netID] = br.Attrs().MTU
	return br.Attrs().MTU
}

// Networks lists the networks that have a namespace file in StateDir, sorted.
func (d *Datapath) Networks() ([]string, error) {
	dir := filepath.Join(d.cfg.StateDir, "netns")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list networks in %s: %w", dir, err)
	}
	var ids []string
	for _, e := range ents {
		if !e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// EnsureNetwork makes the network's namespace, bridge and VXLAN device exist
// as n says. It is idempotent: what exists and matches is adopted untouched
// (tasks' veths and peer entries stay); a bridge or VXLAN device that does
// not match (another VNI, port or VTEP) is recreated; MTU and the gateway
// address are corrected in place (on br0, vx0 and the host ends of task
// veths; a task's own end gets a new MTU at its next AttachTask).
func (d *Datapath) EnsureNetwork(n Network) error {
	if err := n.validate(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check(); err != nil {
		return err
	}
	mtu := n.MTU
	under, err := d.underlayMTU()
	if err != nil {
		return fmt.Errorf("network %s: %w", n.ID, err)
	}
	if mtu == 0 {
		mtu = under - vxlanOverhead
	} else if mtu > under-vxlanOverhead {
		d.cfg.Log.Warn("overlay MTU above what the underlay carries; large packets will be dropped",
			"network", n.ID, "mtu", mtu, "underlay_mtu", under)
	}
	path := d.NetnsPath(n.ID)
	created := !isNsfs(path)
	if err := createNetns(path); err != nil {
		return fmt.Errorf("network %s: namespace: %w", n.ID, err)
	}
	if err := d.ensureDevices(path, n, mtu); err != nil {
		if created {
			// Leave nothing half made behind a first attempt.
			if _, rerr := d.removeLocked(n.ID); rerr != nil {
				d.cfg.Log.Warn("cleanup after a failed EnsureNetwork", "network", n.ID, "err", rerr)
			}
		}
		return fmt.Errorf("network %s: %w", n.ID, err)
	}
	d.mtus[n.ID] = mtu
	if created {
		d.cfg.Log.Info("overlay network created", "network", n.ID, "vni", n.VNI, "subnet", n.Subnet, "mtu", mtu)
	}
	return nil
}

// ensureDevices makes lo, br0 and vx0 right in the namespace at path.
func (d *Datapath) ensureDevices(path string, n Network, mtu int) error {
	ns, h, err := nsHandle(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	defer h.Close()
	if lo, err := h.LinkByName("lo"); err == nil {
		if err := h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("lo up: %w", err)
		}
	}
	br, err := d.ensureBridge(h, n, mtu)
	if err != nil {
		return err
	}
	if err := d.ensureVxlan(h, ns, n, mtu, br); err != nil {
		return err
	}
	// A changed MTU reaches the host ends of task veths now; the task ends
	// get it at their next AttachTask.
	links, err := linkList(h)
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		if l.Type() == "veth" && l.Attrs().MasterIndex == br.Attrs().Index && l.Attrs().MTU != mtu {
			if err := h.LinkSetMTU(l, mtu); err != nil {
				return fmt.Errorf("%s mtu %d: %w", l.Attrs().Name, mtu, err)
			}
		}
	}
	return nil
}

// underlayMTU is the MTU of the daemon-namespace interface holding the VTEP.
func (d *Datapath) underlayMTU() (int, error) {
	addrs, err := d.hh.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return 0, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == d.cfg.VTEP {
			l, err := d.hh.LinkByIndex(a.LinkIndex)
			if err != nil {
				return 0, fmt.Errorf("underlay interface of VTEP %s: %w", d.cfg.VTEP, err)
			}
			return l.Attrs().MTU, nil
		}
	}
	return 0, errdefs.FailedPrecondition("VTEP %s is not an address of any interface in the daemon's network namespace; set the node's data-path address to one of its own addresses", d.cfg.VTEP)
}

func ipNet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(bits, a.BitLen())}
}

// ensureBridge makes br0 a bridge with the gateway address and MTU, up.
func (d *Datapath) ensureBridge(h *netlink.Handle, n Network, mtu int) (netlink.Link, error) {
	l, err := h.LinkByName(bridgeName)
	if err == nil && l.Type() != "bridge" {
		d.cfg.Log.Warn("replacing a non-bridge link named br0", "network", n.ID, "type", l.Type())
		if err := h.LinkDel(l); err != nil {
			return nil, fmt.Errorf("delete %s (a %s, not a bridge): %w", bridgeName, l.Type(), err)
		}
		err = netlink.LinkNotFoundError{}
	}
	if err != nil {
		if !isNotFound(err) {
			return nil, fmt.Errorf("bridge %s: %w", bridgeName, err)
		}
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeName, MTU: mtu}}); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("create bridge %s: %w", bridgeName, err)
		}
		if l, err = h.LinkByName(bridgeName); err != nil {
			return nil, fmt.Errorf("bridge %s: %w", bridgeName, err)
		}
	}
	if l.Attrs().MTU != mtu {
		if err := h.LinkSetMTU(l, mtu); err != nil {
			return nil, fmt.Errorf("bridge %s mtu %d: %w", bridgeName, mtu, err)
		}
	}
	want := netip.PrefixFrom(n.Gateway, n.Subnet.Bits())
	addrs, err := h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", bridgeName, err)
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok && p != want {
			if err := h.AddrDel(l, &a); err != nil {
				return nil, fmt.Errorf("remove stale address %s from %s: %w", p, bridgeName, err)
			}
		}
	}
	if err := h.AddrReplace(l, &netlink.Addr{IPNet: ipNet(want.Addr(), want.Bits())}); err != nil {
		return nil, fmt.Errorf("gateway %s on %s: %w", want, bridgeName, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("%s up: %w", bridgeName, err)
	}
	return l, nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), bits), true
}

// vxlanMatches reports whether an existing vx0 is the one n needs.
func (d *Datapath) vxlanMatches(l netlink.Link, n Network) bool {
	v, ok := l.(*netlink.Vxlan)
	if !ok {
		return false
	}
	src, _ := netip.AddrFromSlice(v.SrcAddr)
	return uint32(v.VxlanId) == n.VNI && v.Port == int(d.cfg.Port) && src.Unmap() == d.cfg.VTEP &&
		!v.Learning && v.Proxy && v.L2miss && v.L3miss
}

// ensureVxlan makes vx0 exist in the network's namespace with n's VNI, the
// port and VTEP, on br0, up. A new one is created in the daemon's namespace
// under a temporary name and moved in.
func (d *Datapath) ensureVxlan(h *netlink.Handle, ns netns.NsHandle, n Network, mtu int, br netlink.Link) error {
	l, err := h.LinkByName(vxlanName)
	switch {
	case err == nil && !d.vxlanMatches(l, n):
		d.cfg.Log.Warn("recreating a VXLAN device that does not match the network", "network", n.ID, "vni", n.VNI)
		if err := h.LinkDel(l); err != nil {
			return fmt.Errorf("delete mismatching %s: %w", vxlanName, err)
		}
		l = nil
	case err != nil && !isNotFound(err):
		return fmt.Errorf("vxlan %s: %w", vxlanName, err)
	case err != nil:
		l = nil
	}
	if l == nil {
		if l, err = d.createVxlan(h, ns, n, mtu); err != nil {
			return err
		}
	}
	if l.Attrs().MTU != mtu {
		if err := h.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("%s mtu %d: %w", vxlanName, mtu, err)
		}
	}
	if l.Attrs().MasterIndex != br.Attrs().Index {
		if err := h.LinkSetMasterByIndex(l, br.Attrs().Index); err != nil {
			return fmt.Errorf("attach %s to %s: %w", vxlanName, bridgeName, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("%s up: %w", vxlanName, err)
	}
	return nil
}

func (d *Datapath) createVxlan(h *netlink.Handle, ns netns.NsHandle, n Network, mtu int) (netlink.Link, error) {
	tmp := d.cfg.tmpVxlanName(n.ID)
	if old, err := d.hh.LinkByName(tmp); err == nil {
		if err := d.hh.LinkDel(old); err != nil {
			return nil, fmt.Errorf("delete leftover %s in the daemon's namespace: %w", tmp, err)
		}
	}
	vx := &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{Name: tmp, MTU: mtu},
		VxlanId:   int(n.VNI),
		SrcAddr:   net.IP(d.cfg.VTEP.AsSlice()),
		Port:      int(d.cfg.Port),
		Learning:  false,
		Proxy:     true,
		L2miss:    true,
		L3miss:    true,
	}
	if err := d.hh.LinkAdd(vx); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil, errdefs.AlreadyExists("create vxlan VNI %d port %d in the daemon's namespace: another VXLAN device already uses this VNI and port (a stale overlay namespace? remove it with RemoveNetwork): %v", n.VNI, d.cfg.Port, err)
		}
		return nil, fmt.Errorf("create vxlan %s (VNI %d, port %d, local %s): %w", tmp, n.VNI, d.cfg.Port, d.cfg.VTEP, err)
	}
	l, err := d.hh.LinkByName(tmp)
	if err != nil {
		return nil, fmt.Errorf("vxlan %s: %w", tmp, err)
	}
	if err := d.hh.LinkSetNsFd(l, int(ns)); err != nil {
		_ = d.hh.LinkDel(l)
		return nil, fmt.Errorf("move vxlan %s into the network's namespace: %w", tmp, err)
	}
	if l, err = h.LinkByName(tmp); err != nil {
		return nil, fmt.Errorf("vxlan %s after the move: %w", tmp, err)
	}
	if err := h.LinkSetName(l, vxlanName); err != nil {
		_ = h.LinkDel(l)
		return nil, fmt.Errorf("rename %s to %s: %w", tmp, vxlanName, err)
	}
	return h.LinkByName(vxlanName)
}

// RemoveNetwork deletes the network's links, namespace and bind mount (and a
// leftover temporary VXLAN device in the daemon's namespace). Deleting a
// task's host veth removes its end in the task's namespace too. Removing a
// network that does not exist succeeds.
func (d *Datapath) RemoveNetwork(netID string) error {
	if err := validID(netID); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check(); err != nil {
		return err
	}
	existed, err := d.removeLocked(netID)
	if err != nil {
		return fmt.Errorf("remove network %s: %w", netID, err)
	}
	if existed {
		d.cfg.Log.Info("overlay network removed", "network", netID)
	}
	return nil
}

// removeLocked is RemoveNetwork under d.mu; it reports whether anything was
// there.
func (d *Datapath) removeLocked(netID string) (existed bool, err error) {
	delete(d.mtus, netID)
	var errs []error
	path := d.NetnsPath(netID)
	_, statErr := os.Stat(path)
	existed = statErr == nil
	if isNsfs(path) {
		// Links are deleted explicitly: a namespace is torn down
		// asynchronously, and its VXLAN's VNI would stay taken until then.
		if ns, h, err := nsHandle(path); err == nil {
			links, err := linkList(h)
			if err != nil {
				errs = append(errs, fmt.Errorf("list links: %w", err))
			}
			for _, l := range links {
				if l.Attrs().Name == "lo" {
					continue
				}
				if err := h.LinkDel(l); err != nil && !isNotFound(err) {
					errs = append(errs, fmt.Errorf("delete %s: %w", l.Attrs().Name, err))
				}
			}
			h.Close()
			ns.Close()
		} else {
			errs = append(errs, err)
		}
	}
	if err := removeNetns(path); err != nil {
		errs = append(errs, err)
	}
	tmp := d.cfg.tmpVxlanName(netID)
	if l, err := d.hh.LinkByName(tmp); err == nil {
		existed = true
		if err := d.hh.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete leftover %s: %w", tmp, err))
		}
	}
	return existed, errors.Join(errs...)
}
