package mesh

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
)

// The lab of shared/reference/networking/lab.sh, in namespaces named with a
// per-test random prefix: an underlay bridge namespace; hosts h1, h2 and an
// outside client ext on 10.99.0.0/24; per host an overlay sandbox (br0 with
// the gateway, vx0 VNI 4096 created in the host and moved in, static FDB
// and neighbour entries for remote endpoints); the node's own overlay
// address on a veth "ovh" into br0; backends c2, c3 (on h2) and c4 (on h1)
// in their own namespaces with eth1 on the overlay.
const (
	ulH1     = "10.99.0.1"
	ulH2     = "10.99.0.2"
	ulExt    = "10.99.0.100"
	ovSubnet = "10.200.0.0/24"
	ovH1     = "10.200.0.2"
	ovH2     = "10.200.0.3"
	beTCP    = 8080
	beUDP    = 9000
)

var backendIP = map[string]string{"c2": "10.200.0.12", "c3": "10.200.0.13", "c4": "10.200.0.14"}
var backendHost = map[string]string{"c2": "h2", "c3": "h2", "c4": "h1"}

type lab struct {
	t      testing.TB
	prefix string
}

func run(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func output(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// mac is the lab's MAC for an overlay address: 02:42 and the address bytes.
func mac(ip string) net.HardwareAddr {
	a := netip.MustParseAddr(ip).As4()
	return net.HardwareAddr{2, 0x42, a[0], a[1], a[2], a[3]}
}

func (l *lab) name(n string) string { return l.prefix + "-" + n }
func (l *lab) path(n string) string { return "/run/netns/" + l.name(n) }

func (l *lab) ip(ns string, args ...string) {
	l.t.Helper()
	run(l.t, append([]string{"ip", "-n", l.name(ns)}, args...)...)
}

func (l *lab) newNS(n string) {
	l.t.Helper()
	name := l.name(n)
	run(l.t, "ip", "netns", "add", name)
	l.t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	l.ip(n, "link", "set", "lo", "up")
}

func newLab(t testing.TB) *lab {
	t.Helper()
	testutil.RequiresRoot(t)
	l := &lab{t: t, prefix: "mesh" + randHex()}

	l.newNS("ul")
	l.ip("ul", "link", "add", "ulbr", "type", "bridge")
	l.ip("ul", "link", "set", "ulbr", "up")
	for h, addr := range map[string]string{"h1": ulH1, "h2": ulH2, "ext": ulExt} {
		l.newNS(h)
		l.ip(h, "link", "add", "eth0", "type", "veth", "peer", "name", "ul-"+h, "netns", l.name("ul"))
		l.ip("ul", "link", "set", "ul-"+h, "master", "ulbr", "up")
		l.ip(h, "addr", "add", addr+"/24", "dev", "eth0")
		l.ip(h, "link", "set", "eth0", "up")
	}
	for _, h := range []string{"h1", "h2"} {
		ov := h + "-ov"
		l.newNS(ov)
		l.ip(ov, "link", "add", "br0", "type", "bridge")
		l.ip(ov, "addr", "add", "10.200.0.1/24", "dev", "br0")
		l.ip(ov, "link", "set", "br0", "up")
		l.ip(h, "link", "add", "vx0", "type", "vxlan", "id", "4096", "dstport", "4789", "nolearning", "proxy", "l2miss", "l3miss")
		l.ip(h, "link", "set", "vx0", "mtu", "1450", "netns", l.name(ov))
		l.ip(ov, "link", "set", "vx0", "master", "br0", "up")
	}
	for c, addr := range backendIP {
		h := backendHost[c]
		l.newNS(c)
		l.ip(h+"-ov", "link", "add", "v"+c, "mtu", "1450", "type", "veth", "peer", "name", "eth1", "netns", l.name(c))
		l.ip(h+"-ov", "link", "set", "v"+c, "master", "br0", "up")
		l.ip(c, "link", "set", "eth1", "address", mac(addr).String(), "mtu", "1450")
		l.ip(c, "addr", "add", addr+"/24", "dev", "eth1")
		l.ip(c, "link", "set", "eth1", "up")
	}
	for h, addr := range map[string]string{"h1": ovH1, "h2": ovH2} {
		l.ip(h, "link", "add", "ovh", "mtu", "1450", "type", "veth", "peer", "name", "vh"+h, "netns", l.name(h+"-ov"))
		l.ip(h+"-ov", "link", "set", "vh"+h, "master", "br0", "up")
		l.ip(h, "link", "set", "ovh", "address", mac(addr).String())
		l.ip(h, "addr", "add", addr+"/24", "dev", "ovh")
		l.ip(h, "link", "set", "ovh", "up")
	}
	peer := func(h, ip, vtep string) {
		l.ip(h+"-ov", "neigh", "replace", ip, "lladdr", mac(ip).String(), "dev", "vx0", "nud", "permanent")
		run(t, "bridge", "-n", l.name(h+"-ov"), "fdb", "replace", mac(ip).String(), "dev", "vx0", "dst", vtep, "self", "permanent")
	}
	ul := map[string]string{"h1": ulH1, "h2": ulH2}
	for c, addr := range backendIP {
		for _, h := range []string{"h1", "h2"} {
			if backendHost[c] != h {
				peer(h, addr, ul[backendHost[c]])
			}
		}
	}
	peer("h1", ovH2, ulH2)
	peer("h2", ovH1, ulH1)
	for c := range backendIP {
		l.serve(c)
	}
	return l
}

// serve runs, inside backend c's namespace, a TCP server on beTCP that
// writes "<c> peer=<client ip>\n" and then echoes, and a UDP server on
// beUDP that answers every datagram with "<c> peer=<client ip>".
func (l *lab) serve(c string) {
	var ln net.Listener
	var pc net.PacketConn
	err := inNetns(l.path(c), func() error {
		var err error
		if ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", beTCP)); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", beUDP))
		return err
	})
	if err != nil {
		l.t.Fatalf("listen in %s: %v", c, err)
	}
	l.t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
				_, _ = fmt.Fprintf(conn, "%s peer=%s\n", c, host)
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				_, _ = io.Copy(conn, conn)
			}()
		}
	}()
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(from.String())
			_, _ = pc.WriteTo([]byte(c+" peer="+host), from)
		}
	}()
}

// dial opens a TCP connection from namespace ns to addr:port and returns
// it with the greeting line read.
func (l *lab) dial(ns, addr string, port int, timeout time.Duration) (net.Conn, string, error) {
	var conn net.Conn
	err := inNetns(l.path(ns), func() error {
		var err error
		conn, err = net.DialTimeout("tcp4", net.JoinHostPort(addr, fmt.Sprint(port)), timeout)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		conn.Close()
		return nil, "", fmt.Errorf("read greeting: %w", err)
	}
	return conn, strings.TrimSpace(line), nil
}

// ask makes one TCP connection and returns the greeting.
func (l *lab) ask(ns, addr string, port int, timeout time.Duration) (string, error) {
	c, g, err := l.dial(ns, addr, port, timeout)
	if err != nil {
		return "", err
	}
	c.Close()
	return g, nil
}

// udpConn opens a connected UDP socket in ns.
func (l *lab) udpConn(ns, addr string, port int) (net.Conn, error) {
	var c net.Conn
	err := inNetns(l.path(ns), func() error {
		var err error
		c, err = net.Dial("udp4", net.JoinHostPort(addr, fmt.Sprint(port)))
		return err
	})
	return c, err
}

func udpAsk(c net.Conn, timeout time.Duration) (string, error) {
	if _, err := c.Write([]byte("?")); err != nil {
		return "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 128)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func addrs(names ...string) []netip.Addr {
	var out []netip.Addr
	for _, n := range names {
		out = append(out, netip.MustParseAddr(backendIP[n]))
	}
	return out
}

// returnPaths installs the return path in every backend for both nodes.
func (l *lab) returnPaths() {
	l.t.Helper()
	nodes := []IngressNode{{MAC: mac(ovH1), Addr: netip.MustParseAddr(ovH1)}, {MAC: mac(ovH2), Addr: netip.MustParseAddr(ovH2)}}
	for c := range backendIP {
		if err := ApplyReturn(l.path(c), Return{Interface: "eth1", Subnet: netip.MustParsePrefix(ovSubnet), Nodes: nodes, UDPPorts: []uint16{beUDP}}); err != nil {
			l.t.Fatal(err)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func randHex() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
