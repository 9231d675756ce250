package lab_test

// Helpers of the overlay acceptance tests (overlay_acceptance_test.go) and benchmarks
// (overlay_bench_test.go): a swarm of real shoald processes on lab hosts with real containerd, an image
// registry in the lab's Outside namespace, and ways to act from inside a task's network namespace.
//
// The tests act as the tasks themselves: they find a task's container in containerd (its id is the task
// id), take its pid's network namespace (/proc/PID/ns/net) and open sockets there from the test process
// (setns on a locked thread), or run a program there (nsenter --net). So DNS questions come from the
// task's own namespace (127.0.0.11 is the node's DNS server there), connections to a VIP go through the
// task's own nftables, and no tool is needed in the images.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/test/images"
	"github.com/shoal-project/shoal/test/lab"
)

// busyboxCmd keeps a busybox task running and makes it exit at once on SIGTERM (a shell's `sleep` as
// PID 1 would ignore it and cost the stop grace period on every removal).
var busyboxCmd = []string{"sh", "-c", `trap "exit 0" TERM; sleep 86400 & wait`}

// ovCluster is a formed swarm on a lab: h1 is the only manager, the others are workers.
type ovCluster struct {
	t        testing.TB
	l        *lab.Lab
	registry string // as the hosts reach it
	busybox  string
	whoami   string
	conn     *grpc.ClientConn // h1's control socket
	ctl      api.ControlClient
}

// newOvCluster builds a lab of n hosts, serves the test images from Outside, starts shoald on every host,
// inits the swarm on h1 and joins the others as workers; it returns once `node ls` shows n Ready nodes.
func newOvCluster(t testing.TB, n int) *ovCluster {
	t.Helper()
	testutil.RequiresContainerd(t) // and root, for the lab's namespaces
	l := lab.New(t, lab.Config{Hosts: n, Name: "ov", ShoaldPath: lab.BuildShoald(t), ShoalPath: lab.BuildShoal(t)})
	c := &ovCluster{t: t, l: l}
	c.startRegistry()
	if err := l.StartAll("--insecure-registry", c.registry); err != nil {
		t.Fatal(err)
	}
	h1 := l.Host(1)
	c.sh(h1, "swarm", "init", "--advertise-addr", h1.APIAddr)
	tok := strings.TrimSpace(c.sh(h1, "swarm", "join-token", "worker", "-q"))
	for _, h := range l.Hosts[1:] {
		c.sh(h, "swarm", "join", "--token", tok, "--advertise-addr", h.APIAddr, h1.APIAddr)
	}
	conn, err := grpc.NewClient("unix://"+h1.ControlSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c.conn, c.ctl = conn, api.NewControlClient(conn)
	c.waitReady(60 * time.Second)
	return c
}

// startRegistry serves one in-memory registry on Outside:5000 (for the hosts) and on loopback (to push
// from the test process), with the busybox and whoami test images.
func (c *ovCluster) startRegistry() {
	c.t.Helper()
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	ln, err := c.l.Outside.Listen("tcp", ":5000")
	if err != nil {
		c.t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	c.t.Cleanup(func() { srv.Close() })
	local := httptest.NewServer(h)
	c.t.Cleanup(local.Close)
	push := strings.TrimPrefix(local.URL, "http://")
	c.registry = c.l.Outside.Addr.String() + ":5000"
	images.PushTest(c.t, push, images.Busybox)
	images.PushTest(c.t, push, images.Whoami)
	c.busybox, c.whoami = images.Ref(c.registry, images.Busybox), images.Ref(c.registry, images.Whoami)
}

// waitReady waits until every host is a Ready node.
func (c *ovCluster) waitReady(within time.Duration) {
	c.t.Helper()
	lab.WaitFor(c.t, within, func() error {
		out, err := c.try(c.l.Host(1), "node", "ls", "--format", "{{.Hostname}} {{.Status}}")
		if err != nil {
			return err
		}
		if n := strings.Count(out, " Ready"); n != len(c.l.Hosts) {
			return fmt.Errorf("%d of %d nodes Ready:\n%s", n, len(c.l.Hosts), out)
		}
		return nil
	})
}

// sh runs the CLI on h and fails the test on error.
func (c *ovCluster) sh(h *lab.Host, args ...string) string {
	c.t.Helper()
	out, err := h.Shoal(context.Background(), args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// try runs the CLI on h, bounded by 20 s.
func (c *ovCluster) try(h *lab.Host, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return h.Shoal(ctx, args...)
}

// mgr is the host the CLI talks to.
func (c *ovCluster) mgr() *lab.Host { return c.l.Host(1) }

// hostByName is the lab host whose hostname is name (h1, h2...).
func (c *ovCluster) hostByName(name string) *lab.Host {
	for _, h := range c.l.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// ovTask is a task as the tests need it.
type ovTask struct {
	ID, Service, Node string // Node is the hostname (h1...)
	State, Desired    api.TaskState
	Err, Message      string
	Addrs             map[string]netip.Addr // network name -> address on it
}

func (t ovTask) String() string {
	return fmt.Sprintf("%s %s on %s %s/%s %v %q", t.Service, t.ID[:min(12, len(t.ID))], t.Node, t.State, t.Desired, t.Addrs, t.Err)
}

// live reports whether the task may hold its addresses: its container may exist.
func (t ovTask) live() bool { return t.State <= api.TaskState_RUNNING }

// allTasks lists every task of the cluster (all pages) with node hostnames and network names.
func (c *ovCluster) allTasks(ctx context.Context) ([]ovTask, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	nodes := map[string]string{}
	var tok string
	for {
		r, err := c.ctl.ListNodes(ctx, &api.ListNodesRequest{PageToken: tok})
		if err != nil {
			return nil, err
		}
		for _, n := range r.GetNodes() {
			nodes[n.GetId()] = n.GetDescription().GetHostname()
		}
		if tok = r.GetNextPageToken(); tok == "" {
			break
		}
	}
	services := map[string]string{}
	rs, err := c.ctl.ListServices(ctx, &api.ListServicesRequest{})
	if err != nil {
		return nil, err
	}
	for _, s := range rs.GetServices() {
		services[s.GetId()] = s.GetSpec().GetAnnotations().GetName()
	}
	netNames := map[string]string{}
	rn, err := c.ctl.ListNetworks(ctx, &api.ListNetworksRequest{})
	if err != nil {
		return nil, err
	}
	for _, n := range rn.GetNetworks() {
		netNames[n.GetId()] = n.GetSpec().GetAnnotations().GetName()
	}
	var out []ovTask
	tok = ""
	for {
		r, err := c.ctl.ListTasks(ctx, &api.ListTasksRequest{PageToken: tok})
		if err != nil {
			return nil, err
		}
		for _, t := range r.GetTasks() {
			ot := ovTask{ID: t.GetId(), Service: services[t.GetServiceId()], Node: nodes[t.GetNodeId()],
				State: t.GetStatus().GetState(), Desired: t.GetDesiredState(), Err: t.GetStatus().GetErr(),
				Message: t.GetStatus().GetMessage(), Addrs: map[string]netip.Addr{}}
			if ot.Service == "" {
				ot.Service = t.GetServiceAnnotations().GetName()
			}
			for _, a := range t.GetNetworks() {
				name := a.GetNetworkName()
				if name == "" {
					name = netNames[a.GetNetworkId()]
				}
				for _, s := range a.GetAddresses() {
					if p, err := netip.ParsePrefix(s); err == nil {
						ot.Addrs[name] = p.Addr()
					}
				}
			}
			out = append(out, ot)
		}
		if tok = r.GetNextPageToken(); tok == "" {
			break
		}
	}
	return out, nil
}

// running returns the tasks of service that are running and meant to run.
func (c *ovCluster) running(service string) ([]ovTask, error) {
	all, err := c.allTasks(context.Background())
	if err != nil {
		return nil, err
	}
	var out []ovTask
	for _, t := range all {
		if t.Service == service && t.State == api.TaskState_RUNNING && t.Desired == api.TaskState_RUNNING {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node+out[i].ID < out[j].Node+out[j].ID })
	return out, nil
}

// waitRunning waits until service has exactly n running tasks and no other task meant to run, and
// returns them. On timeout it fails t with `service ps` and the hosts' log tails.
func (c *ovCluster) waitRunning(t testing.TB, service string, n int, within time.Duration) []ovTask {
	t.Helper()
	var got []ovTask
	err := lab.Poll(within, func() error {
		all, err := c.allTasks(context.Background())
		if err != nil {
			return err
		}
		got = got[:0]
		pending := 0
		for _, tk := range all {
			if tk.Service != service || tk.Desired != api.TaskState_RUNNING {
				continue
			}
			if tk.State == api.TaskState_RUNNING {
				got = append(got, tk)
			} else {
				pending++
			}
		}
		if len(got) != n || pending != 0 {
			return fmt.Errorf("%s: %d running, %d not yet, want %d", service, len(got), pending, n)
		}
		return nil
	})
	if err != nil {
		c.diagnose(t, service)
		t.Fatal(err)
	}
	sort.Slice(got, func(i, j int) bool { return got[i].Node+got[i].ID < got[j].Node+got[j].ID })
	return got
}

// diagnose logs what tells why a service is not as expected: `service ps`, the tasks' errors and every
// host's log tail.
func (c *ovCluster) diagnose(t testing.TB, services ...string) {
	t.Helper()
	for _, s := range services {
		out, err := c.try(c.mgr(), "service", "ps", "--no-trunc", s)
		t.Logf("service ps %s: %v\n%s", s, err, out)
	}
	if all, err := c.allTasks(context.Background()); err == nil {
		for _, tk := range all {
			if slices.Contains(services, tk.Service) || len(services) == 0 {
				t.Logf("task %v %s", tk, tk.Message)
			}
		}
	}
	for _, h := range c.l.Hosts {
		t.Logf("%s log tail:\n%s", h.Name, h.LogTail(25))
	}
}

// createService runs `service create -d --name name args...` and returns nothing; the caller waits.
func (c *ovCluster) createService(t testing.TB, name string, args ...string) {
	t.Helper()
	argv := append([]string{"service", "create", "-d", "--name", name}, args...)
	if _, err := c.try(c.mgr(), argv...); err != nil {
		t.Fatal(err)
	}
}

// netns returns the network namespace of a task's container: /proc/PID/ns/net of its process, found
// through containerd on the task's host.
func (c *ovCluster) netns(tk ovTask) (taskNS, error) {
	h := c.hostByName(tk.Node)
	if h == nil {
		return taskNS{}, fmt.Errorf("task %s: node %q is no lab host", tk.ID, tk.Node)
	}
	pid, err := containerPID(h, tk.ID)
	if err != nil {
		return taskNS{}, err
	}
	return taskNS{Path: fmt.Sprintf("/proc/%d/ns/net", pid), Task: tk}, nil
}

// mustNetns is netns failing t.
func (c *ovCluster) mustNetns(t testing.TB, tk ovTask) taskNS {
	t.Helper()
	ns, err := c.netns(tk)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// containerPID is the pid of the running container id in h's containerd namespace.
func containerPID(h *lab.Host, id string) (int, error) {
	out, err := ctr(h, "tasks", "ls")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == id && f[2] == "RUNNING" {
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("no running container %s in containerd namespace %s:\n%s", id, h.ContainerdNamespace, out)
}

// ctr runs ctr in h's containerd namespace, bounded by 10 s.
func ctr(h *lab.Host, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ctr", append([]string{"-n", h.ContainerdNamespace}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr -n %s %s: %w: %s", h.ContainerdNamespace, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

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

// serviceVIP returns the service's virtual IP on the named network, from `service inspect`.
func (c *ovCluster) serviceVIP(service, network string) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.ctl.GetService(ctx, &api.GetServiceRequest{ServiceId: service})
	if err != nil {
		return netip.Addr{}, err
	}
	nid, err := c.networkID(network)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, v := range r.GetService().GetEndpoint().GetVirtualIps() {
		if v.GetNetworkId() == nid {
			p, err := netip.ParsePrefix(v.GetAddr())
			if err != nil {
				return netip.Addr{}, fmt.Errorf("service %s: VIP %q: %w", service, v.GetAddr(), err)
			}
			return p.Addr(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("service %s has no VIP on %s: endpoint %v", service, network, r.GetService().GetEndpoint())
}

// networkID is the ID of the named network.
func (c *ovCluster) networkID(name string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.ctl.GetNetwork(ctx, &api.GetNetworkRequest{NetworkId: name})
	if err != nil {
		return "", err
	}
	return r.GetNetwork().GetId(), nil
}

// inspectJSON runs `network inspect name` and decodes the first object.
func (c *ovCluster) inspectJSON(kind, name string) (map[string]any, error) {
	out, err := c.try(c.mgr(), kind, "inspect", name)
	if err != nil {
		return nil, err
	}
	var v []map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil || len(v) == 0 {
		return nil, fmt.Errorf("%s inspect %s: %v: %s", kind, name, err, out)
	}
	return v[0], nil
}

// findKey returns the first value found under a key equal (ignoring case) to one of keys, depth first.
func findKey(v any, keys ...string) (any, bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			for _, want := range keys {
				if strings.EqualFold(k, want) {
					return val, true
				}
			}
		}
		for _, val := range x {
			if r, ok := findKey(val, keys...); ok {
				return r, true
			}
		}
	case []any:
		for _, val := range x {
			if r, ok := findKey(val, keys...); ok {
				return r, true
			}
		}
	}
	return nil, false
}

// addrSet formats addresses sorted, for messages and comparisons.
func addrSet(as []netip.Addr) string {
	s := slices.Clone(as)
	slices.SortFunc(s, func(x, y netip.Addr) int { return x.Compare(y) })
	s = slices.Compact(s)
	parts := make([]string, len(s))
	for i, a := range s {
		parts[i] = a.String()
	}
	return strings.Join(parts, ",")
}

// taskAddrs are the tasks' addresses on network.
func taskAddrs(ts []ovTask, network string) []netip.Addr {
	var out []netip.Addr
	for _, t := range ts {
		if a, ok := t.Addrs[network]; ok {
			out = append(out, a)
		}
	}
	return out
}

// loop makes one request every interval until stop is closed and counts the outcomes; errors are
// classified: a reset or refusal (what must never happen to a new connection), a timeout, other.
type loop struct {
	mu                         sync.Mutex
	ok, resets, timeouts, errs int
	last                       []string
	hosts                      map[string]int
	failAt                     []time.Time
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
	return fmt.Sprintf("%d ok, %d resets/refusals, %d timeouts, %d other errors, replicas answering %d; first errors: %q",
		l.ok, l.resets, l.timeouts, l.errs, len(l.hosts), l.last)
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
	l := &loop{}
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
			l.record(start, h, err)
		}
	}()
	var once sync.Once
	return l, func() { once.Do(func() { close(stop); <-done }) }
}
