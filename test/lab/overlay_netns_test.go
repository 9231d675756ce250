package lab_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// taskNS is a task's network namespace, as the test acts from it.
type taskNS struct {
	Path string
	Task ovTask
}

// do runs fn on a thread inside the namespace: sockets fn creates live there (fn must not start
// goroutines that create sockets).
func (n taskNS) do(fn func() error) error { return inNetns(n.Path, fn) }

// inNetns runs fn on an OS thread that has entered the network namespace at path.
func inNetns(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer self.Close()
		target, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("setns back from %s: %w", path, err)) // thread stays locked: it dies
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// dial connects from the namespace to a literal IP:port.
func (n taskNS) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := n.do(func() error {
		var err error
		c, err = net.DialTimeout(network, addr, timeout)
		return err
	})
	return c, err
}

// listen listens in the namespace.
func (n taskNS) listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := n.do(func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// listenPacket opens a UDP socket in the namespace.
func (n taskNS) listenPacket(addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := n.do(func() error {
		var err error
		pc, err = net.ListenPacket("udp4", addr)
		return err
	})
	return pc, err
}

// exec runs argv inside the namespace (nsenter --net), bounded by 20 s, and returns its combined output.
func (n taskNS) exec(argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + n.Path, "--"}, argv...)...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s's namespace: %s: %w: %s", n.Task.ID, strings.Join(argv, " "), err, out)
	}
	return string(out), nil
}

// dnsAnswer is what the node's DNS server said to a task.
type dnsAnswer struct {
	Rcode int
	Addrs []netip.Addr // A records, sorted
	TTLs  []uint32
	RTT   time.Duration
}

// lookup asks the DNS server at 127.0.0.11:53 in the namespace for name's A records (1 s timeout).
func (n taskNS) lookup(name string) (dnsAnswer, error) {
	var conn net.Conn
	if err := n.do(func() error {
		var err error
		conn, err = net.Dial("udp4", "127.0.0.11:53")
		return err
	}); err != nil {
		return dnsAnswer{}, err
	}
	defer conn.Close()
	return query(&dns.Conn{Conn: conn}, name)
}

// query sends one A question on a DNS connection and waits at most 1 s for the answer.
func query(c *dns.Conn, name string) (dnsAnswer, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	m.RecursionDesired = true
	start := time.Now()
	_ = c.SetDeadline(start.Add(time.Second))
	if err := c.WriteMsg(m); err != nil {
		return dnsAnswer{}, err
	}
	for {
		r, err := c.ReadMsg()
		if err != nil {
			return dnsAnswer{}, fmt.Errorf("DNS %s: %w", name, err)
		}
		if r.Id != m.Id {
			continue
		}
		a := dnsAnswer{Rcode: r.Rcode, RTT: time.Since(start)}
		for _, rr := range r.Answer {
			if x, ok := rr.(*dns.A); ok {
				if ip, ok := netip.AddrFromSlice(x.A.To4()); ok {
					a.Addrs = append(a.Addrs, ip)
					a.TTLs = append(a.TTLs, x.Hdr.Ttl)
				}
			}
		}
		slices.SortFunc(a.Addrs, func(x, y netip.Addr) int { return x.Compare(y) })
		return a, nil
	}
}

// whoami makes one HTTP request from the namespace to addr (IP:port) on a new connection and returns the
// hostname the whoami server answered with.
func (n taskNS) whoami(addr string, timeout time.Duration) (string, error) {
	c, err := n.dial("tcp4", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\nHost: web\r\n\r\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if h, ok := strings.CutPrefix(strings.TrimSpace(line), "hostname: "); ok {
			return h, nil
		}
	}
	return "", fmt.Errorf("no hostname in the answer from %s: %q", addr, b)
}

// ifaceFor returns the name and MTU of the namespace's interface holding addr.
func (n taskNS) ifaceFor(addr netip.Addr) (string, int, error) {
	var name string
	var mtu int
	err := n.do(func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, i := range ifs {
			as, _ := i.Addrs()
			for _, a := range as {
				if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr() == addr {
					name, mtu = i.Name, i.MTU
					return nil
				}
			}
		}
		return fmt.Errorf("no interface holds %s", addr)
	})
	return name, mtu, err
}

// ping sends one ICMP echo with size bytes of payload and the don't-fragment bit to dst from the
// namespace and waits at most timeout for the reply. A packet larger than the path MTU fails, at the
// sender with EMSGSIZE or by never being answered.
func (n taskNS) ping(dst netip.Addr, size int, timeout time.Duration) error {
	var fd int
	if err := n.do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		return err
	}); err != nil {
		return fmt.Errorf("raw socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO); err != nil {
		return err
	}
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	id := uint16(os.Getpid()) ^ uint16(time.Now().UnixNano())
	pkt := make([]byte, 8+size)
	pkt[0] = 8 // echo request
	pkt[4], pkt[5] = byte(id>>8), byte(id)
	pkt[7] = 1
	for i := 8; i < len(pkt); i++ {
		pkt[i] = byte(i)
	}
	sum := icmpChecksum(pkt)
	pkt[2], pkt[3] = byte(sum>>8), byte(sum)
	to := &unix.SockaddrInet4{Addr: dst.As4()}
	if err := unix.Sendto(fd, pkt, 0, to); err != nil {
		return fmt.Errorf("send %d-byte echo to %s: %w", size, dst, err)
	}
	buf := make([]byte, 65536)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		k, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("receive from %s: %w", dst, err)
		}
		sa, ok := from.(*unix.SockaddrInet4)
		if !ok || netip.AddrFrom4(sa.Addr) != dst || k < 28 {
			continue
		}
		ihl := int(buf[0]&0x0f) * 4
		if k < ihl+8 {
			continue
		}
		icmp := buf[ihl:k]
		if icmp[0] == 0 && uint16(icmp[4])<<8|uint16(icmp[5]) == id {
			if len(icmp) != len(pkt) {
				return fmt.Errorf("echo reply from %s has %d bytes, sent %d", dst, len(icmp), len(pkt))
			}
			return nil
		}
	}
	return fmt.Errorf("no echo reply from %s to %d bytes of payload in %v", dst, size, timeout)
}

func icmpChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// natAddrs lists the IPv4 addresses that rules in the namespace's nftables load as immediates: the
// targets of its dnat rules, i.e. the VIP backends (and the DNS redirect to 127.0.0.11). It reads through
// netlink, in milliseconds, so a test can watch a backend leave without the cost of running nft.
func (n taskNS) natAddrs() ([]netip.Addr, error) {
	f, err := os.Open(n.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		return nil, err
	}
	chains, err := c.ListChains()
	if err != nil {
		return nil, fmt.Errorf("list nft chains in %s: %w", n.Path, err)
	}
	var out []netip.Addr
	for _, ch := range chains {
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			return nil, fmt.Errorf("nft rules of %s: %w", ch.Name, err)
		}
		for _, r := range rules {
			for _, e := range r.Exprs {
				if im, ok := e.(*expr.Immediate); ok && len(im.Data) == 4 {
					out = append(out, netip.AddrFrom4([4]byte(im.Data)))
				}
			}
		}
	}
	return out, nil
}

// containsIP reports whether text mentions ip as a whole address (10.0.1.5 is not in 10.0.1.50).
func containsIP(text string, ip netip.Addr) bool {
	s := ip.String()
	for i := 0; ; {
		j := strings.Index(text[i:], s)
		if j < 0 {
			return false
		}
		j += i
		before := j == 0 || !isAddrChar(text[j-1])
		after := j+len(s) == len(text) || !isAddrChar(text[j+len(s)])
		if before && after {
			return true
		}
		i = j + 1
	}
}

func isAddrChar(b byte) bool { return b == '.' || (b >= '0' && b <= '9') }

// loop makes one request every interval until stop is closed and counts the outcomes; errors are
// classified: a reset or refusal (what must never happen to a new connection), a timeout, other.
type loop struct {
	mu                         sync.Mutex
	ok, resets, timeouts, errs int
	inflight                   int // of the failures, those after the connection was made
	last                       []string
	hosts                      map[string]int
	failAt                     []time.Time
	began                      time.Time // when the loop started
}

// record counts one request begun at start.
func (l *loop) record(start time.Time, host string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		l.ok++
		if l.hosts == nil {
			l.hosts = map[string]int{}
		}
		l.hosts[host]++
		return
	}
	l.failAt = append(l.failAt, start)
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "dial" {
		l.inflight++
	}
	var ne net.Error
	switch {
	case errors.Is(err, unix.ECONNRESET), errors.Is(err, unix.ECONNREFUSED):
		l.resets++
	case errors.As(err, &ne) && ne.Timeout():
		l.timeouts++
	default:
		l.errs++
	}
	if len(l.last) < 10 {
		l.last = append(l.last, err.Error())
	}
}

func (l *loop) failures() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.resets + l.timeouts + l.errs
}

func (l *loop) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("%d ok, %d resets/refusals, %d timeouts, %d other errors (%d of the failures on an established connection), replicas answering %d; first errors: %q",
		l.ok, l.resets, l.timeouts, l.errs, l.inflight, len(l.hosts), l.last)
}

// refusedBy looks, right after a refused connection to addr, at every
// backend the namespace's VIP rules hold now, dialed straight (not through
// the VIP): one that refuses too is where the refusal came from (a dead
// task still in the rules, or a task not listening); none refusing points
// at the rules themselves (a VIP with no backend is rejected in the
// namespace). For diagnostics: it never fails, it says what it could not
// read. (conntrack keeps no entry for a flow refused at its first packet.)
func (n taskNS) refusedBy(addr string) string {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err.Error()
	}
	backends, err := n.natAddrs()
	if err != nil {
		return "VIP rules unreadable: " + err.Error()
	}
	var out []string
	for _, b := range backends {
		if b.IsLoopback() {
			continue // the DNS redirect
		}
		res := "ok"
		c, err := n.dial("tcp4", netip.AddrPortFrom(b, ap.Port()).String(), 500*time.Millisecond)
		if err != nil {
			res = err.Error()
		} else {
			c.Close()
		}
		out = append(out, b.String()+": "+res)
	}
	return fmt.Sprintf("the VIP rules' backends now, dialed straight: [%s]", strings.Join(out, "; "))
}

// failuresAfter counts the failed requests begun after t.
func (l *loop) failuresAfter(t time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, at := range l.failAt {
		if at.After(t) {
			n++
		}
	}
	return n
}

// runLoop starts a request loop from ns to addr every interval; the returned stop ends it and waits.
func runLoop(ns taskNS, addr string, interval time.Duration) (*loop, func()) {
	l := &loop{began: time.Now()}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			start := time.Now()
			h, err := ns.whoami(addr, 2*time.Second)
			if errors.Is(err, unix.ECONNREFUSED) {
				// Who refused: the backends the VIP rules hold now,
				// each dialed straight (refusedBy).
				err = fmt.Errorf("%w (at +%v; %s)", err, start.Sub(l.began).Round(time.Millisecond), ns.refusedBy(addr))
			}
			l.record(start, h, err)
		}
	}()
	var once sync.Once
	return l, func() { once.Do(func() { close(stop); <-done }) }
}
