package dns

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/vishvananda/netns"

	"github.com/shoal-project/shoal/internal/testutil"
)

// fakeResolver answers from a map; a nil slice with the key present is a
// known name without address.
type fakeResolver struct {
	mu    sync.Mutex
	names map[string][]netip.Addr
	asked []string // "task name"
}

func (f *fakeResolver) Resolve(taskID, name string) ([]netip.Addr, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, taskID+" "+name)
	a, ok := f.names[name]
	return a, ok
}

func newFake() *fakeResolver {
	m := netip.MustParseAddr
	return &fakeResolver{names: map[string][]netip.Addr{
		"web":       {m("10.0.1.2")},
		"tasks.web": {m("10.0.1.10"), m("10.0.1.11"), m("10.0.1.12")},
		"idle":      nil,
	}}
}

// taskNetns creates a namespace named uniquely and returns its path.
func taskNetns(t testing.TB) string {
	t.Helper()
	testutil.RequiresRoot(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "sdns" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	return "/run/netns/" + name
}

// upstream runs a fake upstream resolver on 127.0.0.1 (UDP and TCP, same
// port) in the test's namespace: upstream.test → 192.0.2.1, slow.test
// answers after delay, everything else NXDOMAIN.
func upstream(t testing.TB, delay time.Duration) string {
	t.Helper()
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg).SetReply(r)
		switch strings.ToLower(r.Question[0].Name) {
		case "upstream.test.":
			m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeA,
				Class: mdns.ClassINET, Ttl: 300}, A: net.IPv4(192, 0, 2, 1)})
		case "slow.test.":
			time.Sleep(delay)
		default:
			m.Rcode = mdns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	for range 20 {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := pc.LocalAddr().String()
		ln, err := net.Listen("tcp4", addr)
		if err != nil {
			pc.Close()
			continue
		}
		for _, s := range []*mdns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
			started := make(chan struct{})
			s.NotifyStartedFunc = func() { close(started) }
			go func() { _ = s.ActivateAndServe() }()
			<-started
			t.Cleanup(func() { _ = s.Shutdown() })
		}
		return addr
	}
	t.Fatal("no free port for the fake upstream")
	return ""
}

func newServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// query asks 127.0.0.11:53 from inside the namespace at path.
func query(t testing.TB, path, proto, name string, qtype uint16) (*mdns.Msg, error) {
	t.Helper()
	return queryTimeout(t, path, proto, name, qtype, 500*time.Millisecond)
}

func queryTimeout(t testing.TB, path, proto, name string, qtype uint16, timeout time.Duration) (*mdns.Msg, error) {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var conn *mdns.Conn
	c := &mdns.Client{Net: proto, Timeout: timeout}
	err = inNetns(ns, func() error {
		var err error
		conn, err = c.Dial("127.0.0.11:53")
		return err
	})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	m := new(mdns.Msg).SetQuestion(name, qtype)
	r, _, err := c.ExchangeWithConn(m, conn)
	return r, err
}

func aRecords(r *mdns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*mdns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

func mustQuery(t *testing.T, path, proto, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	r, err := query(t, path, proto, name, qtype)
	if err != nil {
		t.Fatalf("%s %s %s: %v", proto, name, mdns.TypeToString[qtype], err)
	}
	return r
}

func TestDNSAnswersInsideTaskNetns(t *testing.T) {
	path := taskNetns(t)
	fake := newFake()
	up := upstream(t, 0)
	s := newServer(t, Config{Resolver: fake, Upstreams: []string{up}})
	if err := s.AddTask("task1", path); err != nil {
		t.Fatal(err)
	}
	if err := s.AddTask("task1", path); err != nil {
		t.Fatalf("AddTask again (idempotent): %v", err)
	}
	for _, proto := range []string{"udp", "tcp"} {
		r := mustQuery(t, path, proto, "WEB.", mdns.TypeA)
		if r.Rcode != mdns.RcodeSuccess || !slices.Equal(aRecords(r), []string{"10.0.1.2"}) {
			t.Fatalf("%s web: %v", proto, r)
		}
		if ttl := r.Answer[0].Header().Ttl; ttl > MaxTTL || ttl == 0 {
			t.Fatalf("%s web: TTL %d, want 1..%d", proto, ttl, MaxTTL)
		}

		r = mustQuery(t, path, proto, "tasks.web.", mdns.TypeA)
		got := aRecords(r)
		sort.Strings(got)
		if !slices.Equal(got, []string{"10.0.1.10", "10.0.1.11", "10.0.1.12"}) {
			t.Fatalf("%s tasks.web: %v", proto, r)
		}

		r = mustQuery(t, path, proto, "idle.", mdns.TypeA)
		if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 0 {
			t.Fatalf("%s idle (known, no task): want NOERROR and no record, got %v", proto, r)
		}
		r = mustQuery(t, path, proto, "web.", mdns.TypeAAAA)
		if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 0 {
			t.Fatalf("%s AAAA web: want NOERROR and no record, got %v", proto, r)
		}

		r = mustQuery(t, path, proto, "upstream.test.", mdns.TypeA)
		if !slices.Equal(aRecords(r), []string{"192.0.2.1"}) {
			t.Fatalf("%s upstream.test (forwarded): %v", proto, r)
		}
		r = mustQuery(t, path, proto, "nothing.test.", mdns.TypeA)
		if r.Rcode != mdns.RcodeNameError {
			t.Fatalf("%s nothing.test: want the upstream's NXDOMAIN, got %v", proto, r)
		}
	}
	fake.mu.Lock()
	asked := slices.Contains(fake.asked, "task1 web")
	fake.mu.Unlock()
	if !asked {
		t.Fatalf("resolver not asked for (task1, web): %v", fake.asked)
	}

	// Answers are shuffled.
	orders := map[string]bool{}
	for range 30 {
		orders[strings.Join(aRecords(mustQuery(t, path, "udp", "tasks.web.", mdns.TypeA)), ",")] = true
	}
	if len(orders) < 2 {
		t.Fatalf("30 answers for tasks.web all in one order: %v", orders)
	}

	// RemoveTask: no answer any more, and the table is gone.
	if err := s.RemoveTask("task1"); err != nil {
		t.Fatal(err)
	}
	if r, err := query(t, path, "udp", "web.", mdns.TypeA); err == nil {
		t.Fatalf("after RemoveTask got an answer: %v", r)
	}
	if out, _ := exec.Command("ip", "netns", "exec", filepath.Base(path), "nft", "list", "tables").CombinedOutput(); strings.Contains(string(out), TableName) {
		t.Fatalf("after RemoveTask the namespace still has %s: %s", TableName, out)
	}
	if err := s.RemoveTask("task1"); err != nil {
		t.Fatalf("RemoveTask again: %v", err)
	}
}

func TestDNSNoUpstreamServfailsFast(t *testing.T) {
	path := taskNetns(t)
	empty := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(empty, []byte("nameserver 127.0.0.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, Config{Resolver: newFake(), ResolvConf: empty})
	if len(s.Upstreams()) != 0 {
		t.Fatalf("loopback nameserver kept: %v", s.Upstreams())
	}
	if err := s.AddTask("t", path); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := mustQuery(t, path, "udp", "example.com.", mdns.TypeA)
	if r.Rcode != mdns.RcodeServerFailure {
		t.Fatalf("no upstream: want SERVFAIL, got %v", r)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("SERVFAIL took %v, want it at once (well under the 2s forward timeout)", d)
	}
}

func TestDNSDeadUpstreamServfailsWithinTimeout(t *testing.T) {
	path := taskNetns(t)
	// A UDP port nobody reads: reserve it, then close it.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().String()
	pc.Close()
	up := upstream(t, time.Second)
	s := newServer(t, Config{Resolver: newFake(), Upstreams: []string{up}, ForwardTimeout: 300 * time.Millisecond})
	if err := s.AddTask("t", path); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := mustQuery(t, path, "udp", "slow.test.", mdns.TypeA)
	if r.Rcode != mdns.RcodeServerFailure {
		t.Fatalf("slow upstream: want SERVFAIL, got %v", r)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Fatalf("SERVFAIL after %v, want about the 300ms forward timeout", d)
	}
	s2 := newServer(t, Config{Resolver: newFake(), Upstreams: []string{dead, up}})
	path2 := taskNetns(t)
	if err := s2.AddTask("t2", path2); err != nil {
		t.Fatal(err)
	}
	// The dead first upstream refuses (ICMP): the second answers.
	r = mustQuery(t, path2, "udp", "upstream.test.", mdns.TypeA)
	if !slices.Equal(aRecords(r), []string{"192.0.2.1"}) {
		t.Fatalf("dead then live upstream: %v", r)
	}
}

func TestDNSInflightBound(t *testing.T) {
	path := taskNetns(t)
	up := upstream(t, time.Second)
	s := newServer(t, Config{Resolver: newFake(), Upstreams: []string{up}, MaxInflight: 1})
	if err := s.AddTask("t", path); err != nil {
		t.Fatal(err)
	}
	slow := make(chan *mdns.Msg, 1)
	go func() {
		r, _ := queryTimeout(t, path, "tcp", "slow.test.", mdns.TypeA, 3*time.Second)
		slow <- r
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	r := mustQuery(t, path, "udp", "web.", mdns.TypeA)
	if r.Rcode != mdns.RcodeServerFailure || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("second query with one in flight and MaxInflight 1: %v after %v, want SERVFAIL at once", r, time.Since(start))
	}
	if r := <-slow; r == nil || r.Rcode != mdns.RcodeSuccess {
		t.Fatalf("slow query: %v", r)
	}
	if r := mustQuery(t, path, "udp", "web.", mdns.TypeA); len(r.Answer) != 1 {
		t.Fatalf("after the slow query: %v", r)
	}
}

func TestDNSCloseAndMissingNetns(t *testing.T) {
	path := taskNetns(t)
	s := newServer(t, Config{Resolver: newFake(), Upstreams: []string{"192.0.2.53"}})
	if err := s.AddTask("gone", "/run/netns/sdns-does-not-exist"); err == nil {
		t.Fatal("AddTask with a missing namespace succeeded")
	}
	if err := s.AddTask("t", path); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if r, err := query(t, path, "udp", "web.", mdns.TypeA); err == nil {
		t.Fatalf("after Close got an answer: %v", r)
	}
	if err := s.AddTask("t", path); err != ErrClosed {
		t.Fatalf("AddTask after Close: %v", err)
	}
}

// TestDNSTaskNetnsDeleted: the namespace is deleted before RemoveTask (the
// container died): RemoveTask still succeeds and frees the sockets.
func TestDNSTaskNetnsDeleted(t *testing.T) {
	path := taskNetns(t)
	s := newServer(t, Config{Resolver: newFake(), Upstreams: []string{"192.0.2.53"}})
	if err := s.AddTask("t", path); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "netns", "del", filepath.Base(path)).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := s.RemoveTask("t"); err != nil {
		t.Fatalf("RemoveTask after the namespace went: %v", err)
	}
}

// TestDNSLargeAnswerTruncatedOverUDP: 100 task addresses do not fit in 512
// bytes: UDP gets TC set, TCP gets them all.
func TestDNSLargeAnswerTruncatedOverUDP(t *testing.T) {
	path := taskNetns(t)
	fake := newFake()
	for i := range 100 {
		fake.names["tasks.big"] = append(fake.names["tasks.big"], netip.AddrFrom4([4]byte{10, 0, 2, byte(i + 1)}))
	}
	s := newServer(t, Config{Resolver: fake, Upstreams: []string{"192.0.2.53"}})
	if err := s.AddTask("t", path); err != nil {
		t.Fatal(err)
	}
	r := mustQuery(t, path, "udp", "tasks.big.", mdns.TypeA)
	if !r.Truncated || len(r.Answer) >= 100 {
		t.Fatalf("UDP: truncated %v with %d answers, want TC and fewer than 100", r.Truncated, len(r.Answer))
	}
	r = mustQuery(t, path, "tcp", "tasks.big.", mdns.TypeA)
	if r.Truncated || len(r.Answer) != 100 {
		t.Fatalf("TCP: truncated %v with %d answers, want all 100", r.Truncated, len(r.Answer))
	}
}
