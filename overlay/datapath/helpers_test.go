package datapath

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// testNS creates a namespace bound under dir and removes it in t.Cleanup.
func testNS(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := createNetns(p); err != nil {
		t.Fatalf("create namespace %s: %v", p, err)
	}
	t.Cleanup(func() {
		if err := removeNetns(p); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	inNS(t, p, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
	return p
}

// runIn runs fn on an OS thread switched into the namespace bound at path.
// The thread goes back to its namespace before it is unlocked; if that
// fails it stays locked and dies with the goroutine.
func runIn(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func inNS(t *testing.T, path string, fn func() error) {
	t.Helper()
	if err := runIn(path, fn); err != nil {
		t.Fatalf("in namespace %s: %v", path, err)
	}
}

// handle opens netlink in the namespace at path for the test.
func handle(t *testing.T, path string) *netlink.Handle {
	t.Helper()
	ns, h, err := nsHandle(path)
	if err != nil {
		t.Fatal(err)
	}
	ns.Close()
	t.Cleanup(h.Close)
	return h
}

// underlay joins two host namespaces by a veth pair "eth0" with the given
// MTU and addresses (like lab.sh's underlay bridge, one link shorter).
func underlay(t *testing.T, a, b string, aAddr, bAddr netip.Prefix, mtu int) {
	t.Helper()
	ha, hb := handle(t, a), handle(t, b)
	bns, err := netns.GetFromPath(b)
	if err != nil {
		t.Fatal(err)
	}
	defer bns.Close()
	if err := ha.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0", MTU: mtu}, PeerName: "eth0",
		PeerNamespace: netlink.NsFd(int(bns)), PeerMTU: uint32(mtu)}); err != nil {
		t.Fatalf("underlay veth: %v", err)
	}
	for _, x := range []struct {
		h *netlink.Handle
		p netip.Prefix
	}{{ha, aAddr}, {hb, bAddr}} {
		l, err := x.h.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		if err := x.h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(x.p.Addr(), x.p.Bits())}); err != nil {
			t.Fatal(err)
		}
		if err := x.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
}

// newIn calls New from a thread in the host namespace, so the Datapath's
// daemon namespace is that host; it is closed in t.Cleanup.
func newIn(t *testing.T, host string, cfg Config) *Datapath {
	t.Helper()
	var d *Datapath
	inNS(t, host, func() (err error) { d, err = New(cfg); return err })
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// tcpEcho listens on addr:port inside ns and answers each connection with
// "pong:" + what it read up to a newline. It stops in t.Cleanup.
func tcpEcho(t *testing.T, ns string, addr netip.AddrPort) {
	t.Helper()
	var ln net.Listener
	inNS(t, ns, func() (err error) { ln, err = net.Listen("tcp4", addr.String()); return err })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 256)
				n, _ := c.Read(buf)
				_, _ = c.Write(append([]byte("pong:"), buf[:n]...))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
}

// tcpExchange dials addr from inside ns, sends msg and returns the answer.
func tcpExchange(ns string, addr netip.AddrPort, msg string, timeout time.Duration) (string, error) {
	var c net.Conn
	if err := runIn(ns, func() (err error) {
		d := net.Dialer{Timeout: timeout}
		c, err = d.Dial("tcp4", addr.String())
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// udpSink listens on addr:port inside ns and reports the size of each
// datagram.
func udpSink(t *testing.T, ns string, addr netip.AddrPort) <-chan int {
	t.Helper()
	var pc net.PacketConn
	inNS(t, ns, func() (err error) { pc, err = net.ListenPacket("udp4", addr.String()); return err })
	sizes := make(chan int, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			select {
			case sizes <- n:
			default:
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return sizes
}

// dfSender is a UDP socket inside ns with don't-fragment set
// (IP_PMTUDISC_DO): a datagram of payload N is an IP packet of N+28 bytes,
// like `ping -M do -s N`.
func dfSender(t *testing.T, ns string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	inNS(t, ns, func() error {
		pc, err := net.ListenUDP("udp4", nil)
		if err != nil {
			return err
		}
		rc, err := pc.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
		}); err != nil {
			return err
		}
		c = pc
		return serr
	})
	t.Cleanup(func() { c.Close() })
	return c
}

func isMsgSize(err error) bool { return errors.Is(err, syscall.EMSGSIZE) }

// icmpPing runs busybox's ping (this machine has no iputils) inside ns;
// it reports ok=false when busybox is missing.
func icmpPing(ns string, dst netip.Addr) (ok bool, err error) {
	bb, lerr := exec.LookPath("busybox")
	if lerr != nil {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "--net="+ns, bb, "ping", "-c", "1", "-W", "2", dst.String()).CombinedOutput()
	if err != nil {
		return true, fmt.Errorf("ping %s: %v: %s", dst, err, bytes.TrimSpace(out))
	}
	return true, nil
}

// linkNames lists the links of the namespace at path, sorted.
func linkNames(t *testing.T, path string) []string {
	t.Helper()
	h := handle(t, path)
	ls, err := linkList(h)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range ls {
		names = append(names, l.Attrs().Name)
	}
	slices.Sort(names)
	return names
}

// mounted reports whether path appears in this process's mount table.
func mounted(t *testing.T, path string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), " "+path+" ")
}

// peerState is the permanent neighbour and FDB entries on vx0 of a network.
func peerState(t *testing.T, d *Datapath, netID string) (neigh, fdb map[string]string) {
	t.Helper()
	h := handle(t, d.NetnsPath(netID))
	vx, err := h.LinkByName(vxlanName)
	if err != nil {
		t.Fatal(err)
	}
	neigh, fdb = map[string]string{}, map[string]string{}
	ns, err := neighList(h, vx.Attrs().Index, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if n.State&netlink.NUD_PERMANENT != 0 {
			neigh[n.IP.String()] = n.HardwareAddr.String()
		}
	}
	fs, err := neighList(h, vx.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.Flags&netlink.NTF_SELF != 0 && f.State&netlink.NUD_PERMANENT != 0 {
			fdb[f.HardwareAddr.String()] = f.IP.String()
		}
	}
	return neigh, fdb
}
