package gossip

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

var testKey = bytes.Repeat([]byte{7}, 32)

func testLog() *slog.Logger {
	if os.Getenv("GOSSIP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type node struct {
	*Gossip
	tr *memTransport
}

// start starts a node on the in-memory network; addr "" gives a fresh address.
func start(t testing.TB, mn *memNet, id, addr string, mod func(*Config)) *node {
	t.Helper()
	tr := mn.transport(addr)
	// SuspicionMult 4, memberlist's LAN value and the default: these tests
	// run with -race beside other builds on 2 cores, where a 2 s suspicion
	// made memberlist declare live members dead.
	cfg := Config{NodeID: id, Key: testKey, Transport: tr, Log: testLog(), PushPullInterval: 2 * time.Second, SuspicionMult: 4}
	if mod != nil {
		mod(&cfg)
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", id, err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return &node{g, tr}
}

// cluster starts n nodes and joins them through node 0.
func cluster(t testing.TB, mn *memNet, n int, mod func(*Config)) []*node {
	t.Helper()
	nodes := make([]*node, n)
	for i := range n {
		nodes[i] = start(t, mn, fmt.Sprintf("node%d", i), "", mod)
		if i > 0 {
			if _, err := nodes[i].Join([]string{nodes[0].tr.addr}); err != nil {
				t.Fatalf("node%d join: %v", i, err)
			}
		}
	}
	eventually(t, 10*time.Second, "all members see each other", func() bool {
		for _, x := range nodes {
			if len(x.Members()) != n {
				return false
			}
		}
		return true
	})
	return nodes
}

func waitFor(timeout time.Duration, cond func() bool) (time.Duration, bool) {
	begin := time.Now()
	for !cond() {
		if time.Since(begin) > timeout {
			return 0, false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(begin), true
}

func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	begin := time.Now()
	for !cond() {
		if time.Since(begin) > timeout {
			t.Fatalf("not within %v: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(begin)
}

// keys returns owner/key=IP of a network's live entries at g.
func keys(g *Gossip, network string) map[string]string {
	out := map[string]string{}
	for _, e := range g.Entries(network) {
		out[e.Owner+"/"+e.Key] = e.IP
	}
	return out
}

// diff describes what each node lacks or has extra (failure messages).
func diff(nodes []*node, network string, want map[string]string) string {
	out := ""
	for _, x := range nodes {
		got := keys(x.Gossip, network)
		var missing, extra []string
		for k, v := range want {
			if got[k] != v {
				missing = append(missing, k)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				extra = append(extra, k)
			}
		}
		if len(missing)+len(extra) > 0 {
			x.mu.Lock()
			owners := fmt.Sprintf("%+v", x.t.owners)
			x.mu.Unlock()
			out += fmt.Sprintf("\n%s (members %v): missing %v extra %v owners %s", x.cfg.NodeID, x.Members(), missing, extra, owners)
		}
	}
	return out
}

func allSee(nodes []*node, network string, want map[string]string) func() bool {
	return func() bool {
		for _, x := range nodes {
			got := keys(x.Gossip, network)
			if len(got) != len(want) {
				return false
			}
			for k, v := range want {
				if got[k] != v {
					return false
				}
			}
		}
		return true
	}
}

func TestConvergeAndWithdraw(t *testing.T) {
	for _, tc := range []struct {
		n      int
		gossip bool
	}{{3, false}, {10, false}, {3, true}, {10, true}} {
		n := tc.n
		t.Run(fmt.Sprintf("nodes=%d/gossip=%v", n, tc.gossip), func(t *testing.T) {
			mn := newMemNet()
			nodes := cluster(t, mn, n, func(c *Config) {
				if tc.gossip { // UDP gossip only (clusters above 128 members)
					c.DirectThreshold = math.MaxInt
				}
			})
			want := map[string]string{}
			for i, x := range nodes {
				for j := range 2 {
					ip := fmt.Sprintf("10.0.%d.%d", i, j)
					x.Publish(Entry{Network: "net1", Key: fmt.Sprintf("task%d-%d", i, j), IP: ip, MAC: "02:00:00:00:00:01", VTEP: "192.168.0.1", Aliases: []string{"a"}})
					want[fmt.Sprintf("node%d/task%d-%d", i, i, j)] = ip
				}
			}
			d, ok := waitFor(10*time.Second, allSee(nodes, "net1", want))
			if !ok {
				t.Fatalf("not all nodes see every entry:%s", diff(nodes, "net1", want))
			}
			t.Logf("%d nodes: %d entries converged in %v", n, len(want), d)
			e := nodes[n-1].Entries("net1")[0]
			if e.Generation == 0 || e.Version == 0 || e.MAC != "02:00:00:00:00:01" || len(e.Aliases) != 1 {
				t.Fatalf("entry %+v lost fields", e)
			}
			// Withdraw: a tombstone removes it everywhere.
			nodes[1].Withdraw("net1", "task1-0")
			delete(want, "node1/task1-0")
			eventually(t, 10*time.Second, "withdrawn entry gone everywhere", allSee(nodes, "net1", want))
			// Other networks are separate.
			if got := nodes[0].Entries("other"); len(got) != 0 {
				t.Fatalf("Entries(other) = %v", got)
			}
		})
	}
}

func TestOwnerOnlyWrites(t *testing.T) {
	mn := newMemNet()
	nodes := cluster(t, mn, 3, nil)
	a, b := nodes[0], nodes[1]
	// Publish stamps the local node as owner whatever the caller says.
	a.Publish(Entry{Network: "n", Key: "k", Owner: "node1", Generation: 1 << 62, Version: 99, Deleted: true, IP: "10.0.0.1"})
	want := map[string]string{"node0/k": "10.0.0.1"}
	eventually(t, 10*time.Second, "a's entry everywhere", allSee(nodes, "n", want))
	if e := a.Entries("n")[0]; e.Owner != "node0" || e.Generation != a.cfg.Generation || e.Version != 1 || e.Deleted {
		t.Fatalf("published entry %+v: owner, generation, version, deleted not set by Publish", e)
	}
	// Another node forges a newer version of a's entry: a overwrites it
	// everywhere with its own view.
	forged := a.Entries("n")[0]
	forged.Version += 10
	forged.IP = "6.6.6.6"
	(*delegate)(b.Gossip).NotifyMsg(encodeEntry(&forged))
	eventually(t, 10*time.Second, "forged copy replaced by the owner's view", func() bool {
		for _, x := range nodes {
			es := x.Entries("n")
			if len(es) != 1 || es[0].IP != "10.0.0.1" || es[0].Version <= forged.Version {
				return false
			}
		}
		return true
	})
}

func TestTombstoneReaped(t *testing.T) {
	clock := clockwork.NewFakeClock()
	mn := newMemNet()
	x := start(t, mn, "solo", "", func(c *Config) { c.Clock = clock; c.TombstoneTTL = time.Minute })
	x.Publish(Entry{Network: "n", Key: "k"})
	x.Withdraw("n", "k")
	x.mu.Lock()
	n := len(x.t.all())
	x.mu.Unlock()
	if n != 1 || len(x.Entries("n")) != 0 {
		t.Fatalf("after Withdraw: %d stored, %d live; want the tombstone only", n, len(x.Entries("n")))
	}
	// The reap ticker and the flush window wait on the clock.
	if err := clock.BlockUntilContext(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
	clock.Advance(75 * time.Second) // 5 ticks of TTL/4
	eventually(t, 5*time.Second, "tombstone reaped after TombstoneTTL", func() bool {
		x.mu.Lock()
		defer x.mu.Unlock()
		return len(x.t.all()) == 0
	})
}

func TestKilledMemberDropped(t *testing.T) {
	mn := newMemNet()
	nodes := cluster(t, mn, 5, func(c *Config) { c.SuspicionMult = DefaultSuspicionMult })
	victim := nodes[4]
	victim.Publish(Entry{Network: "n", Key: "t", IP: "10.0.0.9"})
	nodes[0].Publish(Entry{Network: "n", Key: "t0", IP: "10.0.0.1"})
	eventually(t, 10*time.Second, "entries everywhere", allSee(nodes, "n", map[string]string{"node4/t": "10.0.0.9", "node0/t0": "10.0.0.1"}))
	begin := time.Now()
	_ = victim.Close() // memberlist Shutdown without Leave: a killed process
	victim.tr.Shutdown()
	d := eventually(t, 15*time.Second, "killed member's entries gone", allSee(nodes[:4], "n", map[string]string{"node0/t0": "10.0.0.1"}))
	t.Logf("killed member's entries gone from all others in %v", d)
	// 5-6 s expected with SuspicionMult 4; the bound is three 5 s
	// heartbeats. 10 s leaves margin for a loaded machine and -race.
	if d > 10*time.Second {
		t.Fatalf("killed member's entries gone after %v, want about 5-6 s", time.Since(begin))
	}
}

func TestRestartNewGeneration(t *testing.T) {
	for _, republish := range []bool{true, false} {
		t.Run(fmt.Sprintf("republish=%v", republish), func(t *testing.T) {
			mn := newMemNet()
			const grace = 2 * time.Second
			nodes := cluster(t, mn, 3, func(c *Config) { c.RestartGrace = grace })
			old := nodes[2]
			old.Publish(Entry{Network: "n", Key: "k1", IP: "10.0.0.1"})
			old.Publish(Entry{Network: "n", Key: "k2", IP: "10.0.0.2"})
			eventually(t, 10*time.Second, "entries everywhere", allSee(nodes, "n", map[string]string{"node2/k1": "10.0.0.1", "node2/k2": "10.0.0.2"}))
			_ = old.Close()
			// Restart at once (before memberlist declares it dead), same name
			// and address, a new generation.
			fresh := start(t, mn, "node2", old.tr.addr, func(c *Config) {
				c.Generation = old.cfg.Generation + 1000
				c.RestartGrace = grace
			})
			t0 := time.Now()
			if _, err := fresh.Join([]string{nodes[0].tr.addr}); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{}
			if republish {
				fresh.Publish(Entry{Network: "n", Key: "k1", IP: "10.0.0.11"})
				want["node2/k1"] = "10.0.0.11"
				// Within the restart grace the previous generation's k2
				// stays beside the new k1 (a restarted daemon's tasks
				// keep their connections while it re-publishes them).
				eventually(t, grace/2, "k1 rewritten, k2 kept", allSee(nodes[:2], "n",
					map[string]string{"node2/k1": "10.0.0.11", "node2/k2": "10.0.0.2"}))
			}
			all := []*node{nodes[0], nodes[1], fresh}
			d := eventually(t, 10*time.Second, "old generation's entries gone everywhere", allSee(all, "n", want))
			if since := time.Since(t0); since < grace*9/10 {
				t.Errorf("the old generation's entries went %v after the restart, before the grace %v", since, grace)
			}
			t.Logf("stale entries gone in %v", d)
			for _, e := range nodes[0].Entries("n") {
				if e.Generation != fresh.cfg.Generation {
					t.Fatalf("entry %+v of an old generation", e)
				}
			}
		})
	}
}

func TestDropNode(t *testing.T) {
	mn := newMemNet()
	nodes := cluster(t, mn, 3, func(c *Config) { c.PushPullInterval = 300 * time.Millisecond })
	a, c := nodes[0], nodes[2]
	c.Publish(Entry{Network: "n", Key: "k", IP: "10.0.0.3"})
	eventually(t, 10*time.Second, "c's entry everywhere", allSee(nodes, "n", map[string]string{"node2/k": "10.0.0.3"}))
	a.DropNode("node2")
	if got := keys(a.Gossip, "n"); len(got) != 0 {
		t.Fatalf("after DropNode: %v", got)
	}
	// Push-pulls with b and c, and c's new writes of the same generation,
	// do not bring them back.
	c.Publish(Entry{Network: "n", Key: "k2", IP: "10.0.0.4"})
	time.Sleep(1500 * time.Millisecond)
	if got := keys(a.Gossip, "n"); len(got) != 0 {
		t.Fatalf("dropped node's entries came back: %v", got)
	}
	if got := keys(nodes[1].Gossip, "n"); len(got) != 2 {
		t.Fatalf("DropNode at a changed b: %v", got)
	}
	a.RestoreNode("node2")
	eventually(t, 10*time.Second, "entries back after RestoreNode", allSee(nodes, "n", map[string]string{"node2/k": "10.0.0.3", "node2/k2": "10.0.0.4"}))
}

func TestPartitionHeal(t *testing.T) {
	t.Run("short", func(t *testing.T) {
		// Shorter than failure detection: broadcasts are lost, push-pull repairs.
		mn := newMemNet()
		nodes := cluster(t, mn, 4, func(c *Config) { c.PushPullInterval = 500 * time.Millisecond })
		left, right := []*memTransport{nodes[0].tr, nodes[1].tr}, []*memTransport{nodes[2].tr, nodes[3].tr}
		mn.partition(left, right)
		nodes[0].Publish(Entry{Network: "n", Key: "x", IP: "1"})
		nodes[3].Publish(Entry{Network: "n", Key: "y", IP: "2"})
		time.Sleep(800 * time.Millisecond)
		if got := keys(nodes[1].Gossip, "n"); got["node3/y"] != "" {
			t.Fatalf("entry crossed the partition: %v", got)
		}
		mn.heal()
		d := eventually(t, 10*time.Second, "converged after heal", allSee(nodes, "n", map[string]string{"node0/x": "1", "node3/y": "2"}))
		t.Logf("converged %v after heal", d)
	})
	t.Run("long", func(t *testing.T) {
		// Long enough for each side to declare the other dead and drop its
		// entries; after the heal a Join (as the agent does with the seeds
		// of each session message) merges the two sides again.
		mn := newMemNet()
		nodes := cluster(t, mn, 4, func(c *Config) { c.SuspicionMult = DefaultSuspicionMult })
		nodes[0].Publish(Entry{Network: "n", Key: "x", IP: "1"})
		nodes[3].Publish(Entry{Network: "n", Key: "y", IP: "2"})
		eventually(t, 10*time.Second, "entries everywhere", allSee(nodes, "n", map[string]string{"node0/x": "1", "node3/y": "2"}))
		mn.partition([]*memTransport{nodes[0].tr, nodes[1].tr}, []*memTransport{nodes[2].tr, nodes[3].tr})
		eventually(t, 15*time.Second, "each side dropped the other's entries", func() bool {
			return allSee(nodes[:2], "n", map[string]string{"node0/x": "1"})() && allSee(nodes[2:], "n", map[string]string{"node3/y": "2"})()
		})
		nodes[2].Publish(Entry{Network: "n", Key: "z", IP: "3"})
		mn.heal()
		if _, err := nodes[0].Join([]string{nodes[2].tr.addr}); err != nil {
			t.Fatal(err)
		}
		d := eventually(t, 15*time.Second, "converged after heal", allSee(nodes, "n", map[string]string{"node0/x": "1", "node3/y": "2", "node2/z": "3"}))
		t.Logf("converged %v after heal and join", d)
	})
}

func TestWrongKeyCannotJoin(t *testing.T) {
	mn := newMemNet()
	nodes := cluster(t, mn, 2, nil)
	bad := start(t, mn, "intruder", "", func(c *Config) { c.Key = bytes.Repeat([]byte{9}, 32) })
	if n, err := bad.Join([]string{nodes[0].tr.addr}); err == nil || n != 0 {
		t.Fatalf("join with the wrong key: %d, %v; want an error", n, err)
	}
	time.Sleep(500 * time.Millisecond)
	if m := nodes[0].Members(); len(m) != 2 {
		t.Fatalf("members after the intruder's attempt: %v", m)
	}
}

func TestOnChange(t *testing.T) {
	mn := newMemNet()
	var calls atomic.Int64
	var mu sync.Mutex
	seen := map[string]int{}
	var nodes []*node
	nodes = cluster(t, mn, 2, nil)
	_ = nodes[0].Close()
	// A fresh node whose callback re-enters Gossip and is slow: gossip must
	// not be blocked by it.
	var self *Gossip
	var ready = make(chan struct{})
	x := start(t, mn, "watcher", "", func(c *Config) {
		c.OnChange = func(network string) {
			<-ready
			calls.Add(1)
			n := len(self.Entries(network))
			mu.Lock()
			seen[network] = n
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	})
	self = x.Gossip
	close(ready)
	if _, err := x.Join([]string{nodes[1].tr.addr}); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		nodes[1].Publish(Entry{Network: "n", Key: fmt.Sprint(i)})
	}
	eventually(t, 10*time.Second, "watcher has every entry", func() bool { return len(x.Entries("n")) == 50 })
	eventually(t, 10*time.Second, "last OnChange saw every entry", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen["n"] == 50
	})
	if c := calls.Load(); c >= 50 {
		t.Logf("OnChange called %d times for 50 changes (not coalesced?)", c)
	}
}

func TestLoopbackUDP(t *testing.T) {
	mk := func(id string) *Gossip {
		g, err := New(Config{NodeID: id, Key: testKey, BindAddr: netip.MustParseAddr("127.0.0.1"), Port: EphemeralPort, Log: testLog()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = g.Close() })
		return g
	}
	a, b := mk("a"), mk("b")
	addr := a.ml.LocalNode().Address()
	if _, err := b.Join([]string{addr}); err != nil {
		t.Fatal(err)
	}
	a.Publish(Entry{Network: "n", Key: "k", IP: "10.0.0.1"})
	eventually(t, 10*time.Second, "entry over real UDP", func() bool { return len(b.Entries("n")) == 1 })
	if err := b.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "a sees b leave", func() bool { return len(a.Members()) == 1 })
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no node", Config{Key: testKey}},
		{"short key", Config{NodeID: "a", Key: []byte("short")}},
		{"bad port", Config{NodeID: "a", Key: testKey, Port: 70000}},
		{"negative interval", Config{NodeID: "a", Key: testKey, GossipInterval: -1}},
		{"probe timeout", Config{NodeID: "a", Key: testKey, ProbeTimeout: 2 * time.Second}},
		{"state too big", Config{NodeID: "a", Key: testKey, MaxStateBytes: 64 << 20}},
	} {
		c := tc.cfg
		if err := c.validate(); err == nil {
			t.Errorf("%s: validate() = nil, want an error", tc.name)
		}
	}
	c := Config{NodeID: "a", Key: testKey}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if c.Port != DefaultPort || c.GossipInterval != DefaultGossipInterval || c.SuspicionMult != 4 || c.TombstoneTTL != 5*time.Minute || c.Generation == 0 {
		t.Fatalf("defaults not filled: %+v", c)
	}
}

func TestDirectBurst(t *testing.T) {
	mn := newMemNet()
	nodes := cluster(t, mn, 4, func(c *Config) { c.PushPullInterval = 500 * time.Millisecond })
	want := map[string]string{}
	for k := range 40 {
		nodes[0].Publish(Entry{Network: "n", Key: fmt.Sprint(k), IP: fmt.Sprint(k)})
		want["node0/"+fmt.Sprint(k)] = fmt.Sprint(k)
	}
	d := eventually(t, 5*time.Second, "burst everywhere", allSee(nodes, "n", want))
	t.Logf("burst of 40 converged in %v", d)

	// A member the sender cannot reach directly (the others can): the
	// stream to it fails, the burst falls back to gossip, and push-pull with
	// the others brings it there.
	mn.partition([]*memTransport{nodes[0].tr}, []*memTransport{nodes[3].tr})
	for k := range 40 {
		nodes[0].Withdraw("n", fmt.Sprint(k))
	}
	d = eventually(t, 10*time.Second, "withdrawals reach the cut-off member", allSee(nodes, "n", map[string]string{}))
	t.Logf("burst reached a member cut off from the sender in %v", d)
}

func TestBigEntry(t *testing.T) {
	// Too big for a UDP packet: sent directly even when the gossip path is
	// configured, not left in the queue.
	mn := newMemNet()
	nodes := cluster(t, mn, 3, func(c *Config) { c.PushPullInterval = time.Minute; c.DirectThreshold = math.MaxInt })
	var aliases []string
	for i := range 100 {
		aliases = append(aliases, fmt.Sprintf("alias-number-%03d.example", i))
	}
	nodes[0].Publish(Entry{Network: "n", Key: "big", IP: "10.0.0.1", Aliases: aliases})
	eventually(t, 5*time.Second, "big entry everywhere", func() bool {
		for _, x := range nodes {
			es := x.Entries("n")
			if len(es) != 1 || len(es[0].Aliases) != 100 {
				return false
			}
		}
		return true
	})
}

func TestSilentMemberDoesNotDelayWrites(t *testing.T) {
	// A member that went away without a word (dials hang until memberlist's
	// TCPTimeout, 5 s) must not delay writes to the others.
	mn := newMemNet()
	nodes := cluster(t, mn, 4, nil)
	mn.blackhole(nodes[3].tr)
	for k := range 5 {
		begin := time.Now()
		nodes[0].Publish(Entry{Network: "n", Key: fmt.Sprint(k), IP: "x"})
		d := eventually(t, 10*time.Second, "write reaches the live members", func() bool {
			return len(nodes[1].Entries("n")) == k+1 && len(nodes[2].Entries("n")) == k+1
		})
		if d > time.Second {
			t.Fatalf("write %d took %v to reach the live members (held up by the silent one?)", k, time.Since(begin))
		}
	}
}
