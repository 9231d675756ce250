package vip

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
)

const (
	vipAddr  = "10.99.0.100"
	tcpPort  = "8080"
	udpPort  = "9000"
	clientIP = "10.99.0.2"
)

var backendIPs = []string{"10.99.0.11", "10.99.0.12", "10.99.0.13"}

// vipLab is a client namespace and three backend namespaces that answer
// their name on TCP 8080 and UDP 9000.
type vipLab struct {
	client   string // netns path
	backends []netip.Addr
	names    map[string]string // backend IP -> name it answers
}

func newVIPLab(t testing.TB) *vipLab {
	t.Helper()
	testutil.RequiresRoot(t)
	tp := newTopo(t)
	l := &vipLab{client: nsPath(tp.node("c", clientIP)), names: map[string]string{}}
	for i, ip := range backendIPs {
		name := string(rune('a' + i))
		ns := tp.node("b"+name, ip)
		l.backends = append(l.backends, netip.MustParseAddr(ip))
		l.names[ip] = name
		serve(t, nsPath(ns), name)
	}
	return l
}

// serve opens, inside ns, a TCP listener that writes name and closes, and a
// UDP socket that answers every datagram with name.
func serve(t testing.TB, ns, name string) {
	var ln net.Listener
	var pc net.PacketConn
	err := inNetns(ns, func() error {
		var err error
		if ln, err = net.Listen("tcp4", ":"+tcpPort); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp4", ":"+udpPort)
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", ns, err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(name))
			c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(name), from)
		}
	}()
}

// dialTCP connects from the client namespace and returns what the server
// said.
func (l *vipLab) dialTCP(addr string, timeout time.Duration) (string, error) {
	var c net.Conn
	err := inNetns(l.client, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", net.JoinHostPort(addr, tcpPort), timeout)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

func (l *vipLab) udpConn(t *testing.T) net.Conn {
	var c net.Conn
	err := inNetns(l.client, func() error {
		var err error
		c, err = net.Dial("udp4", net.JoinHostPort(vipAddr, udpPort))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func udpAsk(t *testing.T, c net.Conn) string {
	t.Helper()
	if _, err := c.Write([]byte("?")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("udp read: %v", err)
	}
	return string(buf[:n])
}

func (l *vipLab) apply(t testing.TB, backends []netip.Addr) {
	t.Helper()
	err := Apply(l.client, []Service{{ID: "web", VIP: netip.MustParseAddr(vipAddr), Backends: backends}})
	if err != nil {
		t.Fatal(err)
	}
}

// reached makes n TCP connections to the VIP and counts answers per name.
func (l *vipLab) reached(t *testing.T, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		name, err := l.dialTCP(vipAddr, 2*time.Second)
		if err != nil {
			t.Fatalf("connection through the VIP: %v", err)
		}
		got[name]++
	}
	return got
}

func TestVIPBalancesTCPOverAllBackends(t *testing.T) {
	l := newVIPLab(t)
	l.apply(t, l.backends)
	got := l.reached(t, 60)
	if len(got) != 3 {
		t.Fatalf("60 connections reached %v, want all of a, b, c", got)
	}
	t.Logf("60 connections: %v", got)

	// Replace with two backends: only those are reached.
	l.apply(t, l.backends[:2])
	got = l.reached(t, 60)
	if len(got) != 2 || got["c"] != 0 {
		t.Fatalf("after Apply with a, b: reached %v", got)
	}

	// Remove: the VIP is no longer intercepted (nobody owns it: the
	// connection fails, it does not reach a backend).
	if err := Remove(l.client); err != nil {
		t.Fatal(err)
	}
	if err := Remove(l.client); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if name, err := l.dialTCP(vipAddr, 300*time.Millisecond); err == nil {
		t.Fatalf("after Remove the VIP still reached %q", name)
	}
}

func TestVIPNoBackendResetsAtOnce(t *testing.T) {
	l := newVIPLab(t)
	l.apply(t, nil)
	// Every attempt is refused; the fastest of three within 100ms (a
	// timeout would take a SYN retransmission, 1s; the best of three keeps
	// a loaded test machine's scheduling out of the measure).
	best := time.Hour
	for range 3 {
		start := time.Now()
		_, err := l.dialTCP(vipAddr, 2*time.Second)
		best = min(best, time.Since(start))
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial VIP with no backend: err %v, want connection refused", err)
		}
	}
	if best > 100*time.Millisecond {
		t.Fatalf("refusal took %v, want < 100ms", best)
	}
	// UDP gets an ICMP port unreachable: the next read fails with
	// ECONNREFUSED instead of timing out.
	c := l.udpConn(t)
	_, _ = c.Write([]byte("?"))
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, err := c.Read(make([]byte, 8))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("udp to VIP with no backend: err %v, want connection refused", err)
	}
	// A backend appears: the VIP works.
	l.apply(t, l.backends[:1])
	if name, err := l.dialTCP(vipAddr, 2*time.Second); err != nil || name != "a" {
		t.Fatalf("after adding a backend: %q, %v", name, err)
	}
}

func TestVIPUDPAndFlushConntrack(t *testing.T) {
	l := newVIPLab(t)
	l.apply(t, l.backends)
	c := l.udpConn(t)
	first := udpAsk(t, c)
	if again := udpAsk(t, c); again != first {
		t.Fatalf("one UDP flow went to %q then %q", first, again)
	}
	// Remove the backend the flow uses: conntrack keeps the flow on it ...
	var rest []netip.Addr
	var gone netip.Addr
	for _, b := range l.backends {
		if l.names[b.String()] == first {
			gone = b
		} else {
			rest = append(rest, b)
		}
	}
	l.apply(t, rest)
	if got := udpAsk(t, c); got != first {
		t.Fatalf("before the flush the flow moved to %q (conntrack entry expected to pin it to %q)", got, first)
	}
	// ... until it is flushed.
	if err := FlushConntrack(l.client, gone); err != nil {
		t.Fatal(err)
	}
	if got := udpAsk(t, c); got == first {
		t.Fatalf("after FlushConntrack(%s) the flow still reaches %q", gone, got)
	}
}

func TestApplyMissingNetns(t *testing.T) {
	testutil.RequiresRoot(t)
	err := Apply("/run/netns/does-not-exist-svip", nil)
	if err == nil {
		t.Fatal("Apply into a missing namespace succeeded")
	}
	if err := FlushConntrack("/run/netns/does-not-exist-svip", netip.MustParseAddr("10.0.0.1")); err == nil {
		t.Fatal("FlushConntrack in a missing namespace succeeded")
	}
}

func benchDial(b *testing.B, l *vipLab, addr string) {
	target := net.JoinHostPort(addr, tcpPort)
	b.ResetTimer()
	// The whole loop runs on one thread inside the client namespace.
	err := inNetns(l.client, func() error {
		for range b.N {
			c, err := net.DialTimeout("tcp4", target, 2*time.Second)
			if err != nil {
				return err
			}
			c.Close()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDial measures TCP connection setup (connect + close) from the
// client namespace through the VIP (nat output, map lookup, numgen, DNAT
// over 3 backends) and directly to a backend's address, on one topology.
func BenchmarkDial(b *testing.B) {
	l := newVIPLab(b)
	l.apply(b, l.backends)
	b.Run("vip", func(b *testing.B) { benchDial(b, l, vipAddr) })
	b.Run("direct", func(b *testing.B) { benchDial(b, l, backendIPs[0]) })
}

// TestRulesTextIsValidNft checks the rendered golden text with `nft -c -f`
// (parse and kernel check, nothing installed) in a scratch namespace.
func TestRulesTextIsValidNft(t *testing.T) {
	testutil.RequiresRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not installed")
	}
	tp := newTopo(t)
	ns := tp.ns("chk")
	f := filepath.Join(t.TempDir(), "vip.nft")
	text, err := Rules([]Service{
		{ID: "web", VIP: netip.MustParseAddr("10.0.1.2"), Backends: addrs("10.0.1.10", "10.0.1.11")},
		{ID: "idle", VIP: netip.MustParseAddr("10.0.1.4")},
		{ID: "we ird/id", VIP: netip.MustParseAddr("10.0.1.5"), Backends: addrs("10.0.1.12")},
		{ID: "abcdefghijklmnopqrstuvwxy", VIP: netip.MustParseAddr("10.0.1.6"), Backends: addrs("10.0.1.13")},
		{ID: "abcdefghijklmnopZZZZZZZZZ", VIP: netip.MustParseAddr("10.0.1.7"), Backends: addrs("10.0.1.14")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	sh(t, "ip", "netns", "exec", ns, "nft", "-c", "-f", f)
}

// TestApplyConcurrent applies into several namespaces at once (the library's
// global set-ID counter is bypassed: run with -race).
func TestApplyConcurrent(t *testing.T) {
	testutil.RequiresRoot(t)
	tp := newTopo(t)
	var paths []string
	for i := range 4 {
		paths = append(paths, nsPath(tp.ns(fmt.Sprintf("cc%d", i))))
	}
	errs := make(chan error, len(paths)*10)
	var wg sync.WaitGroup
	for _, p := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				errs <- Apply(p, []Service{
					{ID: "web", VIP: netip.MustParseAddr("10.0.1.2"), Backends: addrs("10.0.1.10", "10.0.1.11")[:1+i%2]},
					{ID: "db", VIP: netip.MustParseAddr("10.0.1.3"), Backends: addrs("10.0.1.20")},
				})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range paths {
		if err := Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}
