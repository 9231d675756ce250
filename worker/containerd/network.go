package containerd

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/shoal-project/shoal/errdefs"
)

// network is the node-local task network: a bridge with the subnet's first
// address, and per task a network namespace bound under DataDir/netns, a
// veth pair (host end on the bridge, the other end eth0 in the namespace)
// and an address from the ipam.
type network struct {
	cfg    *Config
	prefix netip.Prefix
	ipam   *ipam
}

// subnetMu serializes the choice of subnets in this process: executors of
// parallel tests would otherwise pick the same free /24 before either
// bridge has its address. A file lock covers other processes on the host.
var subnetMu sync.Mutex

const subnetLock = "shoal-subnet.lock"

// networkFile records the chosen subnet so it survives restarts.
type networkFile struct {
	Bridge string `json:"bridge"`
	Subnet string `json:"subnet"`
}

func newNetwork(cfg *Config) (*network, error) {
	subnetMu.Lock()
	defer subnetMu.Unlock()
	lf, err := os.OpenFile(filepath.Join(os.TempDir(), subnetLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err == nil {
		defer lf.Close()
		_ = unix.Flock(int(lf.Fd()), unix.LOCK_EX)
	}

	prefix, err := chooseSubnet(cfg)
	if err != nil {
		return nil, err
	}
	n := &network{cfg: cfg, prefix: prefix}
	if n.ipam, err = newIPAM(cfg.DataDir, prefix); err != nil {
		return nil, err
	}
	if err := n.ensureBridge(); err != nil {
		return nil, err
	}
	return n, nil
}

// chooseSubnet returns Config.Subnet, else the subnet recorded in DataDir,
// else the first /LocalSubnetBits of SubnetPool that overlaps no address of any
// interface in this network namespace, and records it.
func chooseSubnet(cfg *Config) (netip.Prefix, error) {
	path := filepath.Join(cfg.DataDir, "network.json")
	var rec networkFile
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &rec); err != nil {
			return netip.Prefix{}, errdefs.FailedPrecondition("network state %s is damaged (%v); remove it to choose a new subnet", path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return netip.Prefix{}, err
	}
	var p netip.Prefix
	switch {
	case cfg.Subnet != "":
		p = netip.MustParsePrefix(cfg.Subnet)
	case rec.Subnet != "":
		if p, err = netip.ParsePrefix(rec.Subnet); err != nil {
			return netip.Prefix{}, errdefs.FailedPrecondition("network state %s: bad subnet %q", path, rec.Subnet)
		}
	default:
		if p, err = freeSubnet(cfg.Bridge); err != nil {
			return netip.Prefix{}, err
		}
	}
	if rec.Subnet != p.String() || rec.Bridge != cfg.Bridge {
		b, _ := json.MarshalIndent(networkFile{Bridge: cfg.Bridge, Subnet: p.String()}, "", "  ")
		if err := writeFileAtomic(path, b, 0o644); err != nil {
			return netip.Prefix{}, err
		}
	}
	return p, nil
}

func freeSubnet(bridge string) (netip.Prefix, error) {
	// A bridge of that name that already has an address in the pool (a data
	// dir wiped while the bridge stayed) keeps its subnet.
	if l, err := netlink.LinkByName(bridge); err == nil {
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
		for _, a := range addrs {
			if p, ok := prefixOf(a.IPNet); ok && netip.MustParsePrefix(SubnetPool).Contains(p.Addr()) {
				return p.Masked(), nil
			}
		}
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("list addresses: %w", err)
	}
	var used []netip.Prefix
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok {
			used = append(used, p.Masked())
		}
	}
	if p, ok := firstFree(netip.MustParsePrefix(SubnetPool), LocalSubnetBits, used); ok {
		return p, nil
	}
	return netip.Prefix{}, errdefs.Newf(errdefs.ErrResourceExhausted, "no free /%d left in %s for bridge %s; set one with shoald --subnet", LocalSubnetBits, SubnetPool, bridge)
}

// firstFree is the first /bits subnet of pool that overlaps none of used.
func firstFree(pool netip.Prefix, bits int, used []netip.Prefix) (netip.Prefix, bool) {
	base := binary.BigEndian.Uint32(pool.Masked().Addr().AsSlice())
	for i := uint32(0); i < 1<<(bits-pool.Bits()); i++ {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], base+i<<(32-bits))
		cand := netip.PrefixFrom(netip.AddrFrom4(b), bits)
		if !slices.ContainsFunc(used, cand.Overlaps) {
			return cand, true
		}
	}
	return netip.Prefix{}, false
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

func ipNet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(bits, a.BitLen())}
}

// ensureBridge creates the bridge if needed and gives it the gateway address.
func (n *network) ensureBridge() error {
	l, err := netlink.LinkByName(n.cfg.Bridge)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return fmt.Errorf("bridge %s: %w", n.cfg.Bridge, err)
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: n.cfg.Bridge, MTU: n.cfg.MTU}}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create bridge %s: %w", n.cfg.Bridge, err)
		}
		if l, err = netlink.LinkByName(n.cfg.Bridge); err != nil {
			return fmt.Errorf("bridge %s: %w", n.cfg.Bridge, err)
		}
	}
	if l.Type() != "bridge" {
		return errdefs.FailedPrecondition("%s exists and is a %s, not a bridge", n.cfg.Bridge, l.Type())
	}
	gw := &netlink.Addr{IPNet: ipNet(n.ipam.gateway(), n.prefix.Bits())}
	if err := netlink.AddrReplace(l, gw); err != nil {
		return fmt.Errorf("address %s on bridge %s: %w", gw.IPNet, n.cfg.Bridge, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("bridge %s up: %w", n.cfg.Bridge, err)
	}
	return nil
}

// vethName is the host end of a task's veth: short (IFNAMSIZ is 16) and
// derived from the bridge and task, so it can be found again after a restart
// without any state.
func vethName(bridge, taskID string) (host, peer string) {
	h := sha256.Sum256([]byte(bridge + "/" + taskID))
	s := hex.EncodeToString(h[:])[:11]
	return "vs" + s, "vp" + s
}

// Attach gives the task its namespace, veth and address and returns the
// address with the subnet's prefix length. It is idempotent: replayed after
// a crash at any point it repairs what is missing and keeps the address.
func (n *network) Attach(taskID string) (netip.Prefix, error) {
	addr, err := n.ipam.Allocate(taskID)
	if err != nil {
		return netip.Prefix{}, err
	}
	p := netip.PrefixFrom(addr, n.prefix.Bits())
	if err := n.ensureBridge(); err != nil {
		return p, err
	}
	path := n.cfg.netnsPath(taskID)
	if err := createNetns(path); err != nil {
		return p, fmt.Errorf("network namespace %s: %w", path, err)
	}
	if err := n.plugVeth(taskID, path, p); err != nil {
		return p, err
	}
	return p, nil
}

func (n *network) plugVeth(taskID, nsPath string, p netip.Prefix) error {
	hostName, peerName := vethName(n.cfg.Bridge, taskID)
	// A veth from an interrupted attach is replaced, not reused: its peer
	// may be half configured.
	if old, err := netlink.LinkByName(hostName); err == nil {
		_ = netlink.LinkDel(old)
	}
	nsh, err := netns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", nsPath, err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", nsPath, err)
	}
	defer h.Close()
	if l, err := h.LinkByName("eth0"); err == nil {
		_ = h.LinkDel(l)
	}

	br, err := netlink.LinkByName(n.cfg.Bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", n.cfg.Bridge, err)
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostName, MTU: n.cfg.MTU, MasterIndex: br.Attrs().Index},
		PeerName:      peerName,
		PeerNamespace: netlink.NsFd(int(nsh)),
		PeerMTU:       uint32(n.cfg.MTU),
		// A MAC derived from the address, as Docker does, keeps ARP caches
		// right when an address is reused.
		PeerHardwareAddr: macFor(p.Addr()),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s: %w", hostName, err)
	}
	hostLink, err := netlink.LinkByName(hostName)
	if err != nil {
		return fmt.Errorf("veth %s: %w", hostName, err)
	}
	if err := netlink.LinkSetUp(hostLink); err != nil {
		return fmt.Errorf("veth %s up: %w", hostName, err)
	}

	peer, err := h.LinkByName(peerName)
	if err != nil {
		return fmt.Errorf("veth peer %s in %s: %w", peerName, nsPath, err)
	}
	if err := h.LinkSetName(peer, "eth0"); err != nil {
		return fmt.Errorf("rename %s to eth0: %w", peerName, err)
	}
	if err := h.AddrReplace(peer, &netlink.Addr{IPNet: ipNet(p.Addr(), p.Bits())}); err != nil {
		return fmt.Errorf("address %s on eth0: %w", p, err)
	}
	if err := h.LinkSetUp(peer); err != nil {
		return fmt.Errorf("eth0 up: %w", err)
	}
	if lo, err := h.LinkByName("lo"); err == nil {
		if err := h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("lo up: %w", err)
		}
	}
	route := &netlink.Route{LinkIndex: peer.Attrs().Index, Gw: net.IP(n.ipam.gateway().AsSlice())}
	if err := h.RouteReplace(route); err != nil {
		return fmt.Errorf("default route via %s: %w", n.ipam.gateway(), err)
	}
	return nil
}

func macFor(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
}

// Detach undoes Attach; every step tolerates what is already gone.
func (n *network) Detach(taskID string) error {
	var errs []error
	hostName, _ := vethName(n.cfg.Bridge, taskID)
	if l, err := netlink.LinkByName(hostName); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete veth %s: %w", hostName, err))
		}
	}
	if err := removeNetns(n.cfg.netnsPath(taskID)); err != nil {
		errs = append(errs, err)
	}
	if err := n.ipam.Release(taskID); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Address returns the task's address, if it has one.
func (n *network) Address(taskID string) (netip.Prefix, bool) {
	a, ok, err := n.ipam.Lookup(taskID)
	if err != nil || !ok {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, n.prefix.Bits()), true
}

// createNetns makes a new network namespace and binds it at path, so it
// outlives every process in it (the task's process may exit and the address
// must stay reportable until Remove). A namespace already bound there is
// kept.
func createNetns(path string) error {
	if isNsfs(path) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o444)
	if err != nil {
		return err
	}
	f.Close()

	errc := make(chan error, 1)
	go func() {
		// unshare moves only this OS thread into the new namespace. The
		// thread goes back to the original namespace before it is handed back
		// to the scheduler; if that fails it stays locked and dies with the
		// goroutine instead of running other code in the wrong namespace.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
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
			errc <- errors.Join(merr, fmt.Errorf("return to the host namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		if merr != nil {
			merr = fmt.Errorf("bind mount: %w", merr)
		}
		errc <- merr
	}()
	if err := <-errc; err != nil {
		_ = os.Remove(path)
		return err
	}
	return nil
}

// nsfsMagic is NSFS_MAGIC, the filesystem type of a bound namespace.
const nsfsMagic = 0x6e736673

func isNsfs(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == nsfsMagic
}

func removeNetns(path string) error {
	for isNsfs(path) {
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount netns %s: %w", path, err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// etcFiles writes the task's /etc/hosts, /etc/resolv.conf and /etc/hostname
// into its directory; they are bind-mounted read-only into the container.
func writeEtcFiles(dir, hostname string, addr netip.Addr, extraHosts, nameservers, search, options []string) error {
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if addr.IsValid() {
		fmt.Fprintf(&hosts, "%s\t%s\n", addr, hostname)
	}
	for _, h := range extraHosts {
		// Docker's "IP HOST..." form; "HOST:IP" is accepted too, as in
		// compose's extra_hosts.
		f := strings.Fields(h)
		if len(f) == 1 {
			if i := strings.LastIndex(h, ":"); i > 0 {
				f = []string{h[i+1:], h[:i]}
			}
		}
		hosts.WriteString(strings.Join(f, "\t") + "\n")
	}
	var resolv strings.Builder
	for _, ns := range nameservers {
		fmt.Fprintf(&resolv, "nameserver %s\n", ns)
	}
	if len(search) > 0 {
		fmt.Fprintf(&resolv, "search %s\n", strings.Join(search, " "))
	}
	if len(options) > 0 {
		fmt.Fprintf(&resolv, "options %s\n", strings.Join(options, " "))
	}
	for name, data := range map[string]string{"hosts": hosts.String(), "resolv.conf": resolv.String(), "hostname": hostname + "\n"} {
		if err := writeFileAtomic(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}
