package lab_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/test/lab"
)

// Rounds of BenchmarkMesh, each multiplied by b.N (make bench-mesh runs -benchtime 1x).
const (
	meshRounds     = 5    // throughput and requests/s: rounds per side (SHOAL_BENCH_MESH_ROUNDS)
	meshConnects   = 1000 // connection setup: connections per side
	meshRuleRounds = 20   // rule update: task kills
)

// BenchmarkMesh measures issue 11's routing-mesh numbers on one 3-host lab swarm (h1 manager), each
// against its baseline in the same run, the sides alternated and their order rotated every round:
//
//	go test -run XXX -bench Mesh -benchtime 1x -count 1 -timeout 40m -v ./test/lab/   (make bench-mesh)
//
// The measured service "mbench" is one whoami replica on h3, published in ingress mode on 8080 (HTTP,
// target 80) and 5201 (iperf3, target 5201; the iperf3 server runs in the task's network namespace). The
// client is always the lab's Outside namespace. The sides:
//
//   - mesh: Outside -> h1:PORT. h1 runs no task: its shoal-ingress table DNATs to the task's ingress
//     address, the packet crosses the ingress overlay (VXLAN) to h3, and the reply comes back through h1
//     (the client address is kept: the task routes it by the ingress node's MAC).
//   - node: Outside -> h3:PORT, the task's own node: its table DNATs to the local task, no overlay. This is
//     the "directly to the task's node".
//   - overlay: Outside -> the task's ingress address itself, routed through h1 (a /32 route in Outside via
//     h1): the same wire path as "mesh" (lab link to h1, ingress overlay to h3, the reply back through h1
//     by the same return route) without the mesh's DNAT. This is the "over the same overlay path",
//     and the fairer baseline: mesh/overlay is the cost of the mesh itself, mesh/node also includes the
//     VXLAN hop. If the routed path does not answer, the side is left out and said so.
//
// Sub-benchmarks:
//
//   - throughput: iperf3 TCP, 5 s per side per round (5 rounds, or SHOAL_BENCH_MESH_ROUNDS); the ratio of
//     the medians and the median of the per-round ratios (goal >= 0.9).
//   - requests: wrk, 1 thread, 16 keep-alive connections, 5 s per side per round (as many rounds);
//     medians of requests/s and ratios as for throughput (goal >= 0.9).
//   - connect: 1,000 x N connections per side, interleaved, from one thread in Outside: the TCP connect,
//     and the connect plus one HTTP/1.0 request read to the end; p50 and p99 of each.
//   - rules: a service "mupd" (2 whoami replicas, not on h1, published 8085); 20 x N times: a replica's
//     container process SIGKILLed (timestamp taken at the kill(2)) until every node's shoal-ingress table
//     no longer DNATs to it, seen by `nft monitor` in each host namespace (the first table replacement
//     after the kill without that backend); p50, p99 and max of the slowest node. Before each kill the round
//     waits (60 s at most, else it is skipped) until every node sends to both replicas; a backend still
//     there 30 s after the kill is "missed"; three missed or skipped rounds end the series.
//   - rules-1000: the same after creating SHOAL_BENCH_MESH_SERVICES (default 1,000) more published
//     one-replica services (busybox, ports 20000 up; the swarm's ingress network is made a /20 at the start
//     for their 2,000 addresses), paced (at most 24 tasks not yet running) and bounded: creation gives up
//     after 10 minutes, or when the machine's available memory falls under 3 GiB, and the measurement then
//     runs with the services that run (the count is reported). They are removed at the end. Before the
//     rounds it checks that every node's table serves every bulk port: on 2 December 2026 it did not past
//     about 50 ports (mesh.Apply failed with ENOBUFS; see ingress/mesh's BenchmarkApply), so the default
//     fails until that is fixed, and SHOAL_BENCH_MESH_SERVICES=40 is what could be measured.
//
// ingress/mesh's BenchmarkApply measures Apply alone (one transaction) with 3 to 1,000 ports in-process.
func BenchmarkMesh(b *testing.B) {
	for _, tool := range []string{"iperf3", "wrk", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s not found: run `make deps` (scripts/install-deps.sh)", tool)
		}
	}
	rounds := meshRounds
	if v, err := strconv.Atoi(os.Getenv("SHOAL_BENCH_MESH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	c := newOvCluster(b, 3)
	h1, h3 := c.l.Host(1), c.l.Host(3)
	out := taskNS{Path: c.l.Outside.Path(), Task: ovTask{ID: "outside"}}
	// rules-1000 needs 2,000 ingress addresses (a task and a VIP per service): the default ingress network
	// is a /24. Replaced while no service publishes anything.
	if _, err := c.try(h1, "network", "rm", "ingress"); err != nil {
		b.Fatalf("network rm ingress: %v", err)
	}
	c.sh(h1, "network", "create", "-d", "overlay", "--ingress", "--subnet", "10.0.0.0/20", "ingress")
	c.createService(b, "mbench", "--constraint", "node.hostname==h3", "-p", "8080:80", "-p", "5201:5201", c.whoami)
	c.createService(b, "mupd", "--replicas", "2", "--constraint", "node.hostname!=h1", "-p", "8085:80", c.whoami)
	tk := c.waitRunning(b, "mbench", 1, 180*time.Second)[0]
	task := c.mustNetns(b, tk)
	taskIP := tk.Addrs["ingress"]
	if !taskIP.IsValid() {
		b.Fatalf("mbench's task has no ingress address: %v", tk)
	}
	sides := []meshSide{
		{name: "mesh", addr: h1.Addr, http: 8080},
		{name: "node", addr: h3.Addr, http: 8080},
	}
	for _, s := range sides {
		lab.WaitFor(b, 20*time.Second, func() error {
			_, err := meshGet(out, netip.AddrPortFrom(s.addr, s.http).String(), time.Second)
			return err
		})
	}
	if ok := c.routeToTask(b, out, h1.Addr, taskIP); ok {
		sides = append(sides, meshSide{name: "overlay", addr: taskIP, http: 80})
	}
	b.Logf("mbench task %s on h3, ingress address %s; sides %v", tk.ID[:12], taskIP, sides)

	b.Run("throughput", func(b *testing.B) {
		got := map[string][]float64{}
		for i := 0; i < rounds*b.N; i++ {
			for _, s := range rotate(sides, i) {
				bps, err := iperf(task.Path, out.Path, s.addr) // port 5201: published and target
				if err != nil {
					b.Fatalf("%s: %v", s.name, err)
				}
				got[s.name] = append(got[s.name], bps)
			}
		}
		med := map[string]float64{}
		for _, s := range sides {
			med[s.name] = median(got[s.name])
			b.ReportMetric(med[s.name]/1e9, s.name+"-Gbit/s")
		}
		b.ReportMetric(med["mesh"]/med["node"], "mesh/node")
		line := fmt.Sprintf("iperf3 TCP 5 s, %d rounds, medians: mesh %.2f, node %.2f Gbit/s, mesh/node %.2f", len(got["mesh"]),
			med["mesh"]/1e9, med["node"]/1e9, med["mesh"]/med["node"])
		if m, ok := med["overlay"]; ok {
			b.ReportMetric(med["mesh"]/m, "mesh/overlay")
			line += fmt.Sprintf(", overlay %.2f Gbit/s, mesh/overlay %.2f", m/1e9, med["mesh"]/m)
		}
		b.Logf("%s (goal >= 0.9); per-round ratios %s; rounds (Gbit/s): %s", line, roundRatios(sides, got),
			perSide(sides, got, func(x float64) string { return fmt.Sprintf("%.2f", x/1e9) }))
	})

	b.Run("requests", func(b *testing.B) {
		got := map[string][]float64{}
		for i := 0; i < rounds*b.N; i++ {
			for _, s := range rotate(sides, i) {
				rps, err := wrkRPS(out.Path, netip.AddrPortFrom(s.addr, s.http))
				if err != nil {
					b.Fatalf("%s: %v", s.name, err)
				}
				got[s.name] = append(got[s.name], rps)
			}
		}
		med := map[string]float64{}
		for _, s := range sides {
			med[s.name] = median(got[s.name])
			b.ReportMetric(med[s.name], s.name+"-req/s")
		}
		b.ReportMetric(med["mesh"]/med["node"], "mesh/node")
		line := fmt.Sprintf("wrk -t1 -c16 -d5s, %d rounds, medians: mesh %.0f, node %.0f req/s, mesh/node %.2f", len(got["mesh"]),
			med["mesh"], med["node"], med["mesh"]/med["node"])
		if m, ok := med["overlay"]; ok {
			b.ReportMetric(med["mesh"]/m, "mesh/overlay")
			line += fmt.Sprintf(", overlay %.0f req/s, mesh/overlay %.2f", m, med["mesh"]/m)
		}
		b.Logf("%s (goal >= 0.9); per-round ratios %s; rounds (req/s): %s", line, roundRatios(sides, got),
			perSide(sides, got, func(x float64) string { return fmt.Sprintf("%.0f", x) }))
	})

	b.Run("connect", func(b *testing.B) {
		conn, full := map[string][]time.Duration{}, map[string][]time.Duration{}
		err := out.do(func() error {
			for i := 0; i < meshConnects*b.N; i++ {
				for _, s := range rotate(sides, i) {
					cd, fd, err := connectRequest(netip.AddrPortFrom(s.addr, s.http).String())
					if err != nil {
						return fmt.Errorf("%s, connection %d: %w", s.name, i, err)
					}
					conn[s.name], full[s.name] = append(conn[s.name], cd), append(full[s.name], fd)
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		var parts []string
		for _, s := range sides {
			b.ReportMetric(us(pct(conn[s.name], 50)), s.name+"-connect-p50-µs")
			b.ReportMetric(us(pct(conn[s.name], 99)), s.name+"-connect-p99-µs")
			b.ReportMetric(us(pct(full[s.name], 50)), s.name+"-conn+req-p50-µs")
			b.ReportMetric(us(pct(full[s.name], 99)), s.name+"-conn+req-p99-µs")
			parts = append(parts, fmt.Sprintf("%s: connect p50 %v p99 %v, connect+request p50 %v p99 %v", s.name,
				pct(conn[s.name], 50), pct(conn[s.name], 99), pct(full[s.name], 50), pct(full[s.name], 99)))
		}
		b.Logf("%d connections per side, interleaved; %s; connect p50 mesh/node %.2f", len(conn["mesh"]), strings.Join(parts, "; "),
			float64(pct(conn["mesh"], 50))/float64(pct(conn["node"], 50)))
	})

	b.Run("rules", func(b *testing.B) {
		c.ruleUpdates(b, meshRuleRounds*b.N, "")
	})

	b.Run("rules-1000", func(b *testing.B) {
		n := 1000
		if v, err := strconv.Atoi(os.Getenv("SHOAL_BENCH_MESH_SERVICES")); err == nil && v > 0 {
			n = v
		}
		running, why := c.bulkServices(b, n, 10*time.Minute)
		defer c.removeBulk(b, 10*time.Minute)
		b.ReportMetric(float64(running), "services")
		c.bulkServed(b, running)
		c.ruleUpdates(b, meshRuleRounds*b.N, fmt.Sprintf("with %d of %d bulk services running (%s)", running, n, why))
	})
}

// meshSide is one way from Outside to the mbench task.
type meshSide struct {
	name string
	addr netip.Addr
	http uint16 // 8080 through a node's published port, 80 to the task itself
}

func (s meshSide) String() string { return s.name + "=" + s.addr.String() }

// rotate returns sides starting at index i mod len, so each side goes first as often as the others.
func rotate(sides []meshSide, i int) []meshSide {
	k := i % len(sides)
	return append(append([]meshSide{}, sides[k:]...), sides[:k]...)
}

// perSide formats every side's rounds.
func perSide(sides []meshSide, got map[string][]float64, f func(float64) string) string {
	var parts []string
	for _, s := range sides {
		var xs []string
		for _, x := range got[s.name] {
			xs = append(xs, f(x))
		}
		parts = append(parts, s.name+" ["+strings.Join(xs, " ")+"]")
	}
	return strings.Join(parts, ", ")
}

// roundRatios is, for each baseline side, mesh/side per round and the median of those ratios (steadier
// than the ratio of medians when the machine's load changes between rounds).
func roundRatios(sides []meshSide, got map[string][]float64) string {
	var parts []string
	for _, s := range sides[1:] {
		var rs []float64
		var xs []string
		for i, m := range got["mesh"] {
			if i < len(got[s.name]) && got[s.name][i] > 0 {
				rs = append(rs, m/got[s.name][i])
				xs = append(xs, fmt.Sprintf("%.2f", m/got[s.name][i]))
			}
		}
		parts = append(parts, fmt.Sprintf("mesh/%s [%s] median %.2f", s.name, strings.Join(xs, " "), median(rs)))
	}
	return strings.Join(parts, ", ")
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// routeToTask adds a /32 route in Outside to the task's ingress address via the node without a task
// (removed with b's cleanup) and reports whether the task answers over it.
func (c *ovCluster) routeToTask(b *testing.B, out taskNS, via, taskIP netip.Addr) bool {
	ctx := context.Background()
	dst := taskIP.String() + "/32"
	if o, err := c.l.Outside.Exec(ctx, "ip", "route", "add", dst, "via", via.String()); err != nil {
		b.Logf("overlay side left out: ip route add %s via %s in Outside: %v: %s", dst, via, err, o)
		return false
	}
	b.Cleanup(func() { c.l.Outside.Exec(context.Background(), "ip", "route", "del", dst) })
	var err error
	for try := 0; try < 5; try++ {
		if _, err = meshGet(out, netip.AddrPortFrom(taskIP, 80).String(), time.Second); err == nil {
			return true
		}
	}
	b.Logf("overlay side left out: the task does not answer at %s:80 routed through %s: %v", taskIP, via, err)
	return false
}

var wrkRate = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// wrkRPS runs wrk for 5 s in namespace ns against http://addr/ and returns its requests per second. It
// fails if wrk saw socket errors or non-2xx answers.
func wrkRPS(ns string, addr netip.AddrPort) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", "--net="+ns, "--", "wrk", "-t1", "-c16", "-d5s", "http://"+addr.String()+"/")
	cmd.WaitDelay = time.Second
	o, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("wrk %s: %w: %s", addr, err, o)
	}
	if strings.Contains(string(o), "Socket errors") || strings.Contains(string(o), "Non-2xx") {
		return 0, fmt.Errorf("wrk %s saw errors:\n%s", addr, o)
	}
	m := wrkRate.FindSubmatch(o)
	if m == nil {
		return 0, fmt.Errorf("wrk %s: no Requests/sec in:\n%s", addr, o)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// connectRequest, called on a thread already in the client's namespace, times a TCP connect to addr and,
// from the same start, the connect plus one HTTP/1.0 request read to the end.
func connectRequest(addr string) (connect, full time.Duration, err error) {
	start := time.Now()
	conn, err := net.DialTimeout("tcp4", addr, 2*time.Second)
	if err != nil {
		return 0, 0, err
	}
	connect = time.Since(start)
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\nHost: mbench\r\n\r\n"); err != nil {
		return 0, 0, err
	}
	body, err := io.ReadAll(conn)
	if err != nil {
		return 0, 0, err
	}
	if !strings.HasPrefix(string(body), "HTTP/1.") {
		return 0, 0, fmt.Errorf("answer is not HTTP: %.80q", body)
	}
	return connect, time.Since(start), nil
}

// ruleUpdates kills a replica of mupd rounds times and reports how long until every node's shoal-ingress
// table stopped sending to it.
func (c *ovCluster) ruleUpdates(b *testing.B, rounds int, note string) {
	ws := make([]*nftWatch, 0, len(c.l.Hosts))
	for _, h := range c.l.Hosts {
		w, err := watchNft(h)
		if err != nil {
			b.Fatal(err)
		}
		defer w.stop()
		ws = append(ws, w)
	}
	var slowest []time.Duration
	perHost := map[string][]time.Duration{}
	missed, skipped := 0, 0
	var settle []time.Duration // mupd back to 2 running -> every node sends to both
	for i := 0; i < rounds; i++ {
		if missed+skipped >= 3 {
			b.Logf("stopped after %d rounds: %d missed, %d skipped", i, missed, skipped)
			break
		}
		ts := c.waitRunning(b, "mupd", 2, 120*time.Second)
		victim := ts[i%len(ts)]
		ip := victim.Addrs["ingress"]
		// Every node must send to the victim before it dies, or the round measures nothing.
		s0 := time.Now()
		if err := lab.Poll(60*time.Second, func() error {
			for _, h := range c.l.Hosts {
				if o, err := h.Exec(context.Background(), "nft", "list", "table", "ip", "shoal-ingress"); err != nil ||
					!strings.Contains(o, "dnat to "+ip.String()+":") {
					return fmt.Errorf("%s does not send to %s yet (%v)", h.Name, ip, err)
				}
			}
			return nil
		}); err != nil {
			b.Logf("round %d skipped: %v", i, err)
			skipped++
			continue
		}
		settle = append(settle, time.Since(s0))
		pid, err := containerPID(c.hostByName(victim.Node), victim.ID)
		if err != nil {
			b.Fatal(err)
		}
		// A guard against killing anything but a container: its process has its own network namespace.
		if mine, _ := os.Readlink("/proc/self/ns/net"); pid <= 1 || mine == "" || readlink(fmt.Sprintf("/proc/%d/ns/net", pid)) == mine {
			b.Fatalf("task %s: pid %d is not in a container's network namespace; not killed", victim.ID, pid)
		}
		k0 := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			b.Fatalf("kill %d (task %s): %v", pid, victim.ID, err)
		}
		var worst time.Duration
		for _, w := range ws {
			d, err := w.gone(ip, k0, 30*time.Second)
			if err != nil {
				b.Logf("round %d: %v", i, err)
				missed++
				worst = -1
				break
			}
			perHost[w.host.Name] = append(perHost[w.host.Name], d)
			worst = max(worst, d)
		}
		if worst >= 0 {
			slowest = append(slowest, worst)
		}
	}
	b.ReportMetric(ms(pct(slowest, 50)), "p50-ms")
	b.ReportMetric(ms(pct(slowest, 99)), "p99-ms")
	b.ReportMetric(ms(pct(slowest, 100)), "max-ms")
	b.ReportMetric(float64(missed), "missed")
	b.ReportMetric(float64(skipped), "skipped")
	var hp []string
	for _, h := range c.l.Hosts {
		hp = append(hp, fmt.Sprintf("%s p50 %v p99 %v", h.Name, pct(perHost[h.Name], 50), pct(perHost[h.Name], 99)))
	}
	b.Logf("SIGKILL -> backend gone from all %d nodes' shoal-ingress %s, %d rounds (%d missed, %d skipped): p50 %v p99 %v max %v; per node: %s; all: %v; "+
		"before each kill, from the replacement running to every node sending to both replicas: p50 %v max %v",
		len(c.l.Hosts), note, len(slowest), missed, skipped, pct(slowest, 50), pct(slowest, 99), pct(slowest, 100), strings.Join(hp, ", "), slowest,
		pct(settle, 50), pct(settle, 100))
}

func readlink(p string) string { s, _ := os.Readlink(p); return s }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// nftWatch follows `nft monitor` in a host's namespace and keeps, per nftables transaction that replaced
// (or deleted) the shoal-ingress table, when its end was read and the backends its rules DNAT to.
type nftWatch struct {
	host *lab.Host
	cmd  *exec.Cmd
	done chan struct{}

	mu    sync.Mutex
	txns  []nftTxn // bounded: the oldest are dropped past 256
	lines []string // monitor lines that are not rules (errors), the last 20
}

type nftTxn struct {
	at    time.Time
	dnats map[string]bool // "IP" of each "dnat to IP:PORT" added
}

var dnatTo = regexp.MustCompile(`dnat to ([0-9.]+):`)

// watchNft starts `nft monitor` in h's namespace; stop ends it.
func watchNft(h *lab.Host) (*nftWatch, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := h.Command(ctx, "nft", "monitor")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("%s: nft monitor: %w", h.Name, err)
	}
	w := &nftWatch{host: h, cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer cancel()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		var cur *nftTxn
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "# new generation"):
				if cur != nil {
					cur.at = time.Now()
					w.mu.Lock()
					w.txns = append(w.txns, *cur)
					if len(w.txns) > 256 {
						w.txns = w.txns[len(w.txns)-256:]
					}
					w.mu.Unlock()
				}
				cur = nil
			case strings.HasPrefix(line, "delete table ip shoal-ingress"), strings.HasPrefix(line, "add table ip shoal-ingress"):
				if cur == nil {
					cur = &nftTxn{dnats: map[string]bool{}}
				}
			case strings.HasPrefix(line, "add rule ip shoal-ingress "):
				if m := dnatTo.FindStringSubmatch(line); m != nil && cur != nil {
					cur.dnats[m[1]] = true
				}
			case strings.HasPrefix(line, "add "), strings.HasPrefix(line, "delete "):
			default:
				w.mu.Lock()
				w.lines = append(w.lines, line)
				if len(w.lines) > 20 {
					w.lines = w.lines[1:]
				}
				w.mu.Unlock()
			}
		}
	}()
	// nft monitor gives no sign that it listens: let it subscribe before anything is measured.
	time.Sleep(300 * time.Millisecond)
	return w, nil
}

// gone waits, bounded by within, for the first table replacement read after k0 whose rules no longer
// DNAT to ip, and returns its time since k0. A replacement that drops ip while the table, listed at once,
// still holds it (the monitor lost messages) is reported and skipped.
func (w *nftWatch) gone(ip netip.Addr, k0 time.Time, within time.Duration) (time.Duration, error) {
	seen := 0
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		w.mu.Lock()
		txns := w.txns
		w.mu.Unlock()
		for ; seen < len(txns); seen++ {
			tx := txns[seen]
			if !tx.at.After(k0) || tx.dnats[ip.String()] {
				continue
			}
			o, err := w.host.Exec(context.Background(), "nft", "list", "table", "ip", "shoal-ingress")
			if err == nil && strings.Contains(o, "dnat to "+ip.String()+":") {
				return 0, fmt.Errorf("%s: nft monitor showed a table without %s, but the table holds it (lost monitor messages?)", w.host.Name, ip)
			}
			return tx.at.Sub(k0), nil
		}
		if len(txns) >= 256 { // trimmed by the reader: start over on what is kept
			seen = 0
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return 0, fmt.Errorf("%s still DNATs to %s %v after the kill (%d transactions read; monitor said %q)", w.host.Name, ip, within, len(w.txns), w.lines)
}

func (w *nftWatch) stop() {
	w.cmd.Process.Kill()
	select {
	case <-w.done:
	case <-time.After(5 * time.Second):
	}
	w.cmd.Wait()
}

// memAvailable is MemAvailable of /proc/meminfo in bytes (0 if unknown).
func memAvailable() uint64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// bulkPrefix names the services of rules-1000.
const bulkPrefix = "mbulk"

// minMemAvail is the free memory below which bulkServices stops adding services.
const minMemAvail = 3 << 30

// bulkServices creates n one-replica busybox services, each published on its own port from 20000, one
// at a time through the control API, holding back while more than bulkAhead of their tasks are not yet
// running (so the machine, shared with others, starts containers at the pace it can), and waits until
// their tasks run. It gives up creating, and then waiting, when within has passed or memory runs low, and
// returns how many bulk tasks run and why it stopped.
func (c *ovCluster) bulkServices(b *testing.B, n int, within time.Duration) (int, string) {
	const bulkAhead = 24
	start := time.Now()
	deadline := start.Add(within)
	created, fails, running := 0, 0, 0
	count := func() {
		all, err := c.allTasks(context.Background())
		if err != nil {
			return
		}
		running = 0
		for _, tk := range all {
			if strings.HasPrefix(tk.Service, bulkPrefix) && tk.State == api.TaskState_RUNNING && tk.Desired == api.TaskState_RUNNING {
				running++
			}
		}
	}
	why := ""
	lowMem := func() bool { m := memAvailable(); return m > 0 && m < minMemAvail }
create:
	for i := 0; i < n; i++ {
		for created-running > bulkAhead {
			if time.Now().After(deadline) || lowMem() {
				why = fmt.Sprintf("creation gave up at %d services after %v (%d tasks running; %d MiB of memory available)",
					created, time.Since(start).Round(time.Second), running, memAvailable()>>20)
				break create
			}
			time.Sleep(time.Second)
			count()
		}
		if time.Now().After(deadline) {
			why = fmt.Sprintf("creation gave up after %v at %d services", within, created)
			break
		}
		if lowMem() {
			why = fmt.Sprintf("creation stopped at %d services: %d MiB of memory left", created, memAvailable()>>20)
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := c.ctl.CreateService(ctx, &api.CreateServiceRequest{Spec: &api.ServiceSpec{
			Annotations: &api.Annotations{Name: fmt.Sprintf("%s%04d", bulkPrefix, i)},
			Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: c.busybox, Args: busyboxCmd}},
			Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 1}},
			Endpoint:    &api.EndpointSpec{Ports: []*api.PortConfig{{TargetPort: 80, PublishedPort: uint32(20000 + i)}}},
		}})
		cancel()
		if err != nil {
			if fails++; fails == 1 || fails == 10 {
				b.Logf("create %s%04d: %v", bulkPrefix, i, err)
			}
			if fails >= 10 {
				why = fmt.Sprintf("creation stopped after 10 errors, the last: %v", err)
				break
			}
			continue
		}
		created++
		if created%100 == 0 {
			count()
			b.Logf("%d bulk services created, %d tasks running, after %v; %d MiB of memory available", created, running,
				time.Since(start).Round(time.Second), memAvailable()>>20)
		}
	}
	b.Logf("created %d bulk services in %v (%d errors)", created, time.Since(start).Round(time.Second), fails)
	for count(); running < created; count() {
		if time.Now().After(deadline) {
			why += fmt.Sprintf("; then only %d of %d tasks running after %v", running, created, within)
			break
		}
		if lowMem() {
			why += fmt.Sprintf("; waiting stopped with %d tasks running: %d MiB of memory left", running, memAvailable()>>20)
			break
		}
		time.Sleep(2 * time.Second)
	}
	if why == "" {
		why = fmt.Sprintf("all running after %v", time.Since(start).Round(time.Second))
	}
	b.Logf("bulk services: %d of %d tasks running (%s); available memory %d MiB", running, n, why, memAvailable()>>20)
	return running, why
}

var bulkChain = regexp.MustCompile(`chain port-tcp-2[0-9]{4} \{`)

// bulkServed checks, bounded, that every node's shoal-ingress table has a chain for each of the running
// bulk services' ports; if not, the rule update times that follow measure a mesh that no longer programs
// its table, and b fails.
func (c *ovCluster) bulkServed(b *testing.B, running int) {
	got := map[string]int{}
	err := lab.Poll(60*time.Second, func() error {
		for _, h := range c.l.Hosts {
			o, err := h.Exec(context.Background(), "nft", "list", "table", "ip", "shoal-ingress")
			if err != nil {
				return err
			}
			got[h.Name] = len(bulkChain.FindAllStringIndex(o, -1))
			if got[h.Name] < running {
				return fmt.Errorf("%s", h.Name)
			}
		}
		return nil
	})
	b.Logf("bulk ports in each node's shoal-ingress table: %v (of %d running services)", got, running)
	if err != nil {
		b.Errorf("a node's shoal-ingress table does not serve every bulk service's port (%v of %d): the mesh stopped programming it (the host logs say why: \"programming the published ports failed\")", got, running)
		for _, h := range c.l.Hosts {
			for _, l := range strings.Split(h.LogTail(400), "\n") {
				if strings.Contains(l, "programming the published ports failed") {
					b.Logf("%s: %s", h.Name, l)
					break
				}
			}
		}
	}
}

// removeBulk removes the bulk services and waits, bounded, until none of their tasks is live (so the
// lab's cleanup has only the rest to do).
func (c *ovCluster) removeBulk(b *testing.B, within time.Duration) {
	start := time.Now()
	var ids []string
	var tok string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		r, err := c.ctl.ListServices(ctx, &api.ListServicesRequest{PageToken: tok})
		cancel()
		if err != nil {
			b.Logf("list services: %v", err)
			return
		}
		for _, s := range r.GetServices() {
			if strings.HasPrefix(s.GetSpec().GetAnnotations().GetName(), bulkPrefix) {
				ids = append(ids, s.GetId())
			}
		}
		if tok = r.GetNextPageToken(); tok == "" {
			break
		}
	}
	ch := make(chan string)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ch {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				c.ctl.RemoveService(ctx, &api.RemoveServiceRequest{ServiceId: id})
				cancel()
			}
		}()
	}
	for _, id := range ids {
		ch <- id
	}
	close(ch)
	wg.Wait()
	err := lab.Poll(within, func() error {
		all, err := c.allTasks(context.Background())
		if err != nil {
			return err
		}
		live := 0
		for _, tk := range all {
			if strings.HasPrefix(tk.Service, bulkPrefix) && tk.live() {
				live++
			}
		}
		if live > 0 {
			return fmt.Errorf("%d bulk tasks still live", live)
		}
		return nil
	})
	b.Logf("removed %d bulk services in %v (%v)", len(ids), time.Since(start).Round(time.Second), err)
}
