package containerd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/worker"
)

func TestIPAM(t *testing.T) {
	dir := t.TempDir()
	p, err := newIPAM(dir, netip.MustParsePrefix("10.9.0.0/29")) // hosts .1-.6; .1 is the gateway
	if err != nil {
		t.Fatal(err)
	}
	if g := p.gateway().String(); g != "10.9.0.1" {
		t.Fatalf("gateway = %s", g)
	}
	got := map[string]bool{}
	for i := 0; i < 5; i++ {
		a, err := p.Allocate(fmt.Sprint("t", i))
		if err != nil {
			t.Fatal(err)
		}
		if got[a.String()] || a.String() == "10.9.0.1" || a.String() == "10.9.0.7" {
			t.Fatalf("bad or repeated address %s", a)
		}
		got[a.String()] = true
	}
	if a, _ := p.Allocate("t0"); a.String() != "10.9.0.2" {
		t.Errorf("re-allocate t0 = %s, want its address 10.9.0.2", a)
	}
	if _, err := p.Allocate("t5"); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Errorf("exhausted subnet: %v", err)
	}
	if err := p.Release("t1"); err != nil {
		t.Fatal(err)
	}
	if err := p.Release("never"); err != nil {
		t.Errorf("release unknown: %v", err)
	}
	// A second allocator on the same dir (a restarted daemon) sees the state.
	q, err := newIPAM(dir, netip.MustParsePrefix("10.9.0.0/29"))
	if err != nil {
		t.Fatal(err)
	}
	if a, err := q.Allocate("t5"); err != nil || a.String() != "10.9.0.3" {
		t.Errorf("allocate after release = %s, %v; want the freed 10.9.0.3", a, err)
	}
	if a, ok, _ := q.Lookup("t2"); !ok || a.String() != "10.9.0.4" {
		t.Errorf("lookup t2 = %s %v", a, ok)
	}
	if _, err := newIPAM(dir, netip.MustParsePrefix("10.10.0.0/24")); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("changing the subnet under live tasks: %v", err)
	}
}

func TestIPAMNoQuickReuse(t *testing.T) {
	p, err := newIPAM(t.TempDir(), netip.MustParsePrefix("10.9.1.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.Allocate("a")
	_ = p.Release("a")
	b, _ := p.Allocate("b")
	if a == b {
		t.Errorf("freed address %s handed out again at once", a)
	}
}

func TestIPAMConcurrent(t *testing.T) {
	dir := t.TempDir()
	prefix := netip.MustParsePrefix("10.9.2.0/24")
	var (
		mu   sync.Mutex
		seen = map[netip.Addr]string{}
		wg   sync.WaitGroup
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := newIPAM(dir, prefix) // one allocator per goroutine, as separate executors
			if err != nil {
				t.Error(err)
				return
			}
			for i := 0; i < 20; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				a, err := p.Allocate(id)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if other, dup := seen[a]; dup {
					t.Errorf("%s handed to %s and %s", a, other, id)
				}
				seen[a] = id
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestConfigValidate(t *testing.T) {
	c := Config{}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if c.Address != DefaultAddress || c.Namespace != DefaultNamespace || c.DataDir != DefaultDataDir || c.Bridge != DefaultBridge ||
		c.Snapshotter != "overlayfs" || c.MTU != 1500 || c.Hostname == "" || c.Nameservers == nil {
		t.Errorf("defaults = %+v", c)
	}
	for name, bad := range map[string]Config{
		"namespace": {Namespace: "bad/ns"},
		"bridge":    {Bridge: "a-very-long-bridge-name"},
		"subnet":    {Subnet: "10.0.0.0/30"},
		"subnet v6": {Subnet: "fd00::/64"},
		"mtu":       {MTU: 100},
		"insecure":  {InsecureRegistries: []string{"http://x/y"}},
		"dns":       {Nameservers: []string{"not-an-ip"}},
	} {
		if err := bad.validate(); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: validate = %v", name, err)
		}
	}
}

func TestPlainHTTP(t *testing.T) {
	c := Config{InsecureRegistries: []string{"reg.local:5000", "plain.example", "192.168.7.0/24"}}
	for host, want := range map[string]bool{
		"127.0.0.1:5000": true, "localhost:5000": true, "[::1]:5000": true,
		"reg.local:5000": true, "reg.local:5001": false, "plain.example:443": true,
		"192.168.7.9:5000": true, "192.168.8.9:5000": false, "registry.example": false,
	} {
		if got := c.plainHTTP(host); got != want {
			t.Errorf("plainHTTP(%s) = %v, want %v", host, got, want)
		}
	}
}

func TestHostNameservers(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	_ = os.WriteFile(p, []byte("# x\nnameserver 127.0.0.53\nnameserver 10.1.1.1\nsearch a\nnameserver ::1\nnameserver 2001:db8::1\n"), 0o644)
	got := hostNameservers(p)
	if strings.Join(got, ",") != "10.1.1.1,2001:db8::1" {
		t.Errorf("nameservers = %v", got)
	}
}

// logController is a controller with only what Logs needs.
func logController(t *testing.T) (*controller, string) {
	cfg := Config{DataDir: t.TempDir(), NodeID: "n1"}
	cfg.LogDir = filepath.Join(cfg.DataDir, "logs")
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &controller{e: &Executor{cfg: cfg}, task: &api.Task{Id: "task1", ServiceId: "s1"}, id: "task1"}
	return c, cfg.logPath("task1")
}

func collect(t *testing.T, c *controller, ctx context.Context, opts worker.LogOptions) []string {
	t.Helper()
	var lines []string
	err := c.Logs(ctx, opts, func(m *api.LogMessage) error {
		if m.Context.TaskId != "task1" || m.Context.ServiceId != "s1" || m.Context.NodeId != "n1" || m.Timestamp == nil {
			t.Errorf("message context %v at %v", m.Context, m.Timestamp)
		}
		lines = append(lines, string(m.Data))
		return nil
	})
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	return lines
}

func TestLogsTailAndSince(t *testing.T) {
	c, path := logController(t)
	if got := collect(t, c, context.Background(), worker.LogOptions{Tail: -1}); len(got) != 0 {
		t.Errorf("no file: %q", got)
	}
	var b strings.Builder
	for i := 1; i <= 5000; i++ { // several read chunks
		fmt.Fprintf(&b, "line %d\n", i)
	}
	b.WriteString("partial")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	all := collect(t, c, context.Background(), worker.LogOptions{Tail: -1})
	if len(all) != 5001 || all[0] != "line 1\n" || all[5000] != "partial" {
		t.Errorf("all: %d lines, first %q last %q", len(all), all[0], all[len(all)-1])
	}
	tail := collect(t, c, context.Background(), worker.LogOptions{Tail: 3})
	if strings.Join(tail, "|") != "line 4999\n|line 5000\n|partial" {
		t.Errorf("tail 3 = %q", tail)
	}
	if got := collect(t, c, context.Background(), worker.LogOptions{Tail: 0}); len(got) != 0 {
		t.Errorf("tail 0 = %q", got)
	}
	if got := collect(t, c, context.Background(), worker.LogOptions{Tail: 1 << 20}); len(got) != 5001 {
		t.Errorf("tail beyond the start = %d lines", len(got))
	}
	if got := collect(t, c, context.Background(), worker.LogOptions{Tail: -1, Since: time.Now().Add(time.Hour)}); len(got) != 0 {
		t.Errorf("since the future = %d lines", len(got))
	}
	if got := collect(t, c, context.Background(), worker.LogOptions{Tail: -1, Since: time.Now().Add(-time.Hour)}); len(got) != 5001 {
		t.Errorf("since an hour ago = %d lines", len(got))
	}
}

func TestLogsLongLinesAndFollow(t *testing.T) {
	c, path := logController(t)
	long := strings.Repeat("x", 2*maxLogLine+10) + "\n"
	if err := os.WriteFile(path, []byte(long), 0o644); err != nil {
		t.Fatal(err)
	}
	got := collect(t, c, context.Background(), worker.LogOptions{Tail: -1})
	if len(got) != 3 || len(got[0]) != maxLogLine || strings.Join(got, "") != long {
		t.Errorf("long line split into %d parts", len(got))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lines := make(chan string, 16)
	done := make(chan error, 1)
	go func() {
		done <- c.Logs(ctx, worker.LogOptions{Tail: 1, Follow: true}, func(m *api.LogMessage) error {
			lines <- string(m.Data)
			return nil
		})
	}()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The last line (three pieces) comes first; only then append, so the new
	// lines are surely read by the polling loop.
	for i := 0; i < 3; i++ {
		select {
		case <-lines:
		case <-ctx.Done():
			t.Fatal("no initial lines")
		}
	}
	for _, w := range []string{"new 1\n", "new 2 ", "end\n"} {
		if _, err := f.WriteString(w); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"new 1\n", "new 2 end\n"} {
		select {
		case l := <-lines:
			if l != want {
				t.Errorf("followed line %q, want %q", l, want)
			}
		case <-ctx.Done():
			t.Fatalf("no followed line %q", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Logs after ctx end = %v, want nil", err)
	}
	// An error from fn stops the read and is returned.
	stop := errors.New("stop")
	if err := c.Logs(context.Background(), worker.LogOptions{Tail: -1}, func(*api.LogMessage) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Logs = %v, want fn's error", err)
	}
}

func TestFirstFreeSubnet(t *testing.T) {
	pool := netip.MustParsePrefix(SubnetPool)
	p, ok := firstFree(pool, LocalSubnetBits, nil)
	if !ok || p.String() != "10.213.0.0/20" {
		t.Fatalf("first of an empty pool: %v %v", p, ok)
	}
	used := []netip.Prefix{netip.MustParsePrefix("10.213.3.0/24"), netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("10.213.16.0/21")}
	if p, ok := firstFree(pool, LocalSubnetBits, used); !ok || p.String() != "10.213.32.0/20" {
		t.Fatalf("first free with %v: %v %v", used, p, ok)
	}
	if l := lastHost(netip.MustParsePrefix("10.213.32.0/20")); l.String() != "10.213.47.254" {
		t.Fatalf("last task address of 10.213.32.0/20: %v", l)
	}
	var all []netip.Prefix
	for i := 0; i < 16; i++ {
		all = append(all, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 213, byte(i * 16), 0}), 20))
	}
	if p, ok := firstFree(pool, LocalSubnetBits, all); ok {
		t.Fatalf("a full pool gave %v", p)
	}
	// 4,093 addresses for tasks in a /20: the bridge takes the first (.1),
	// the broadcast address stays free.
	p20 := netip.MustParsePrefix("10.213.0.0/20")
	ip, err := newIPAM(t.TempDir(), p20)
	if err != nil {
		t.Fatal(err)
	}
	first, err := ip.Allocate("t0")
	if err != nil || first.String() != "10.213.0.2" || lastHost(p20).String() != "10.213.15.254" {
		t.Fatalf("first task address %v (%v), last %v", first, err, lastHost(p20))
	}
}
