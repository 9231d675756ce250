package lab

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
)

// Config describes a lab. The zero value of every field but Hosts has a usable default.
type Config struct {
	// Hosts is the number of lab hosts, 1..99.
	Hosts int
	// Name is a short base name ([a-z][a-z0-9]{0,6}, default "lab"). New appends four random hex digits to
	// make the lab's Prefix, so parallel labs and leftovers of crashed runs never collide; New sweeps
	// leftovers of dead runs with the same base name (see Sweep).
	Name string
	// Subnet is the lab's IPv4 subnet (default: a 10.251.X.0/24 that no route on the machine and no live lab
	// uses). Host N gets address .N+10, the Outside namespace .2.
	Subnet netip.Prefix
	// ShoaldPath is the daemon binary (see BuildShoald). Needed by Start unless Command is set.
	ShoaldPath string
	// ShoalPath is the CLI binary used by Host.Shoal (see BuildShoal). Optional.
	ShoalPath string
	// ExtraArgs are appended to every host's command line (before the arguments given to Start).
	ExtraArgs []string
	// Env is added to the environment of every host process (after os.Environ, before Host.Env).
	Env []string
	// Port is the cluster API port each host listens on (default 4242).
	Port int
	// ContainerdAddress is passed as --containerd-address when set, and used for cleanup
	// (default /run/containerd/containerd.sock).
	ContainerdAddress string
	// Command, when set, returns the argv for a host instead of Host.DefaultArgs (e.g. a stand-in
	// process or a wrapper). ExtraArgs and Start's arguments are still appended.
	Command func(h *Host) []string
	// StartTimeout bounds Start's wait for the control socket (default 30s).
	StartTimeout time.Duration
	// StopTimeout bounds Stop's wait after SIGTERM before it sends SIGKILL (default 10s).
	StopTimeout time.Duration
}

// Lab is a set of hosts, each a network namespace with a veth on the lab's bridge. Create it with New;
// it is torn down by the test's cleanup.
type Lab struct {
	// Prefix names everything the lab creates: bridge Prefix-br, namespaces and root-side veths
	// Prefix-hN and Prefix-out, directory Dir, containerd namespaces lab-Prefix-hN.
	Prefix string
	// Subnet holds the addresses of the hosts and of Outside; they exist only inside the lab's namespaces.
	Subnet netip.Prefix
	// Bridge is the root-namespace bridge joining the veths. It has no address.
	Bridge string
	// Dir holds the hosts' data dirs, control sockets and logs.
	Dir string
	// Hosts are h1..hN, in order.
	Hosts []*Host
	// Outside is a namespace on the lab bridge that is not a host: the place for servers the test runs for
	// the hosts (an image registry, via Outside.Listen) and for clients that play another machine
	// (via Outside.DialContext). Partitions never cut it off.
	Outside *NS

	t   testing.TB
	cfg Config

	mu        sync.Mutex
	drops     map[*Host]map[*Host]int // receiver -> sender -> percent of packets dropped
	listeners []net.Listener
}

const (
	cmdTimeout  = 20 * time.Second // any single ip/nft/ctr command
	killTimeout = 10 * time.Second // a SIGKILLed process to be reaped
)

var baseName = regexp.MustCompile(`^[a-z][a-z0-9]{0,6}$`)

// New builds a lab for t: a bridge, Config.Hosts namespaces with veths and addresses, and the per-host
// paths. No process is started (see Host.Start and StartAll). Everything is removed by t's cleanup, also
// when the test fails or panics. New skips the test when not run as root.
func New(t testing.TB, cfg Config) *Lab {
	t.Helper()
	testutil.RequiresRoot(t) // network namespaces, veths, nftables
	for _, tool := range []string{"ip", "nft", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("lab: %s not found (install iproute2, nftables, util-linux): %v", tool, err)
		}
	}
	if err := cfg.setDefaults(); err != nil {
		t.Fatalf("lab: %v", err)
	}
	if err := Sweep(cfg.Name); err != nil {
		t.Logf("lab: sweeping leftovers of earlier runs: %v", err)
	}
	l := &Lab{t: t, cfg: cfg, drops: map[*Host]map[*Host]int{}}
	if err := l.claim(); err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(l.cleanup)
	if err := l.setup(); err != nil {
		t.Fatalf("lab: setting up %s: %v", l.Prefix, err)
	}
	return l
}

func (c *Config) setDefaults() error {
	if c.Hosts < 1 || c.Hosts > 99 {
		return fmt.Errorf("Hosts must be 1..99, not %d", c.Hosts)
	}
	if c.Name == "" {
		c.Name = "lab"
	}
	if !baseName.MatchString(c.Name) {
		return fmt.Errorf("Name %q must match %s", c.Name, baseName)
	}
	if c.Port == 0 {
		c.Port = 4242
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 30 * time.Second
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = 10 * time.Second
	}
	if c.Subnet.IsValid() {
		c.Subnet = c.Subnet.Masked()
		if !c.Subnet.Addr().Is4() || c.Subnet.Bits() > 24 {
			return fmt.Errorf("Subnet %s must be IPv4 and /24 or larger", c.Subnet)
		}
	}
	return nil
}

// claim picks a free Prefix and Subnet and records the owner in the lab's directory, before any network
// resource exists, so that Sweep in another test or process never takes this lab for a leftover.
func (l *Lab) claim() error {
	l.Subnet = l.cfg.Subnet
	if !l.Subnet.IsValid() {
		s, err := freeSubnet()
		if err != nil {
			return err
		}
		l.Subnet = s
	}
	for range 20 {
		b := make([]byte, 2)
		rand.Read(b)
		p := l.cfg.Name + hex.EncodeToString(b)
		if exists("/run/netns/"+p+"-out") || exists("/sys/class/net/"+p+"-br") {
			continue // a leftover that Sweep could not remove
		}
		dir, err := makeOwned(p, l.Subnet.String())
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		l.Prefix, l.Dir, l.Bridge = p, dir, p+"-br"
		return nil
	}
	return errors.New("no free lab name after 20 tries")
}

func (l *Lab) setup() error {
	if _, err := run("ip", "link", "add", l.Bridge, "type", "bridge",
		"nf_call_iptables", "0", "nf_call_ip6tables", "0", "nf_call_arptables", "0"); err != nil {
		return err
	}
	// No IPv6 link-local address either: the root namespace gets no address of the lab at all. (addrgenmode
	// must be set before, not with, "up".)
	if _, err := run("ip", "link", "set", l.Bridge, "addrgenmode", "none"); err != nil {
		return err
	}
	if _, err := run("ip", "link", "set", l.Bridge, "up"); err != nil {
		return err
	}
	l.Outside = &NS{Netns: l.Prefix + "-out", Veth: l.Prefix + "-out", Addr: l.addr(2), lab: l}
	if err := l.addNS(l.Outside); err != nil {
		return err
	}
	for i := 1; i <= l.cfg.Hosts; i++ {
		name := "h" + strconv.Itoa(i)
		h := &Host{
			NS:                  NS{Netns: l.Prefix + "-" + name, Veth: l.Prefix + "-" + name, Addr: l.addr(10 + i), lab: l},
			Name:                name,
			Index:               i,
			DataDir:             filepath.Join(l.Dir, name, "data"),
			ContainerdNamespace: "lab-" + l.Prefix + "-" + name,
			ControlSocket:       filepath.Join(l.Dir, name, "control.sock"),
			LogPath:             filepath.Join(l.Dir, name, "shoald.log"),
		}
		h.APIAddr = netip.AddrPortFrom(h.Addr, uint16(l.cfg.Port)).String()
		if len(h.ControlSocket) >= 104 {
			return fmt.Errorf("control socket path too long for a unix socket: %s (set TMPDIR shorter)", h.ControlSocket)
		}
		if err := os.MkdirAll(h.DataDir, 0o700); err != nil {
			return err
		}
		l.Hosts = append(l.Hosts, h)
		if err := l.addNS(&h.NS); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) addr(n int) netip.Addr {
	a := l.Subnet.Addr().As4()
	a[3] += byte(n)
	return netip.AddrFrom4(a)
}

// addNS creates the namespace n with loopback up and eth0 (peer of the root-side veth on the bridge)
// carrying n.Addr.
func (l *Lab) addNS(n *NS) error {
	cidr := netip.PrefixFrom(n.Addr, l.Subnet.Bits()).String()
	for _, argv := range [][]string{
		{"ip", "netns", "add", n.Netns},
		{"ip", "link", "add", n.Veth, "type", "veth", "peer", "name", "eth0", "netns", n.Netns},
		{"ip", "link", "set", n.Veth, "addrgenmode", "none"},
		{"ip", "link", "set", n.Veth, "master", l.Bridge, "up"},
		{"ip", "-n", n.Netns, "link", "set", "lo", "up"},
		{"ip", "-n", n.Netns, "addr", "add", cidr, "dev", "eth0"},
		{"ip", "-n", n.Netns, "link", "set", "eth0", "up"},
	} {
		if _, err := run(argv...); err != nil {
			return err
		}
	}
	return nil
}

// StartAll starts every host that is not running, in parallel, with the same extra arguments.
func (l *Lab) StartAll(extra ...string) error {
	errs := make([]error, len(l.Hosts))
	var wg sync.WaitGroup
	for i, h := range l.Hosts {
		if h.Running() {
			continue
		}
		wg.Go(func() { errs[i] = h.Start(extra...) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Host returns host hN (1-based, as in its name).
func (l *Lab) Host(n int) *Host { return l.Hosts[n-1] }

// Others returns every lab host but h.
func (l *Lab) Others(h *Host) []*Host {
	var o []*Host
	for _, x := range l.Hosts {
		if x != h {
			o = append(o, x)
		}
	}
	return o
}

// cleanup tears the lab down. It runs from t.Cleanup, also after a failure or panic.
func (l *Lab) cleanup() {
	failed := l.t.Failed()
	if failed {
		for _, h := range l.Hosts {
			l.t.Logf("lab: %s (%s, %s) last %d lines of %s:\n%s", h.Name, h.APIAddr, h.stateString(),
				logTailLines, h.LogPath, h.LogTail(logTailLines))
		}
	}
	l.mu.Lock()
	for _, ln := range l.listeners {
		ln.Close()
	}
	l.listeners = nil
	l.mu.Unlock()
	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, h := range l.Hosts {
		wg.Go(func() {
			if err := h.Kill(); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		})
	}
	wg.Wait()
	keep := failed && os.Getenv("SHOAL_LAB_KEEP") != ""
	if keep {
		os.WriteFile(filepath.Join(l.Dir, keptFile), nil, 0o644)
		l.t.Logf("lab: SHOAL_LAB_KEEP is set: keeping %s (remove it by hand)", l.Dir)
	}
	errs = append(errs, destroy(l.Prefix, l.cfg.ContainerdAddress))
	if left := leftovers(l.Prefix); len(left) > 0 {
		errs = append(errs, fmt.Errorf("still present after cleanup: %s", strings.Join(left, ", ")))
	}
	if err := errors.Join(errs...); err != nil {
		l.t.Errorf("lab: cleanup of %s: %v", l.Prefix, err)
	}
}

const logTailLines = 50
