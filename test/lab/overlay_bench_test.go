package lab_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/test/lab"
)

// BenchmarkOverlay measures issue 10's overlay numbers on one lab swarm (SHOAL_BENCH_HOSTS hosts,
// default 3; h1 manager), each against its baseline in the same run:
//
//		go test -run XXX -bench Overlay -benchtime 3x -count 1 ./test/lab/   (make bench-overlay)
//
//	  - throughput: iperf3 TCP, 5 s, between two tasks on h1 and h2 over the overlay, then between the
//	    hosts h1 and h2 themselves (the underlay), alternating; the ratio of the medians (goal ≥ 0.65).
//	  - connect: TCP connection setup and one HTTP request from a task on h1 to a one-replica whoami on
//	    h2, through its VIP and to its task IP directly, alternating; p50 and p99 of each, and the ratio.
//	  - dns: p50 and p99 answer latency of the node's DNS server at 1,000 queries/s from one task.
//	  - name propagation: from a task starting (the RUNNING status the manager holds) to tasks.NAME
//	    answering its address in a task on every node.
//
// Gossip convergence and bandwidth at 10, 100 and 1,000 endpoints per network are measured in-process by
// overlay/gossip's own benchmarks, not here.
func BenchmarkOverlay(b *testing.B) {
	hosts := 3
	if n, err := strconv.Atoi(os.Getenv("SHOAL_BENCH_HOSTS")); err == nil && n >= 2 {
		hosts = n
	}
	for _, tool := range []string{"iperf3"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s not found: run `make deps` (scripts/install-deps.sh)", tool)
		}
	}
	c := newOvCluster(b, hosts)
	h1 := c.mgr()
	c.sh(h1, "network", "create", "-d", "overlay", "benchnet")
	c.createService(b, "client", append([]string{"--mode", "global", "--network", "benchnet", c.busybox}, busyboxCmd...)...)
	c.createService(b, "one", "--network", "benchnet", "--constraint", "node.hostname==h2", c.whoami)
	if err := c.pollRunning("client", hosts, 180*time.Second); err != nil {
		c.diagnose(b, "client")
		b.Fatal(err)
	}
	one := c.waitRunning(b, "one", 1, 120*time.Second)[0]
	clients := map[string]taskNS{}
	cts, err := c.running("client")
	if err != nil {
		b.Fatal(err)
	}
	for _, tk := range cts {
		clients[tk.Node] = c.mustNetns(b, tk)
	}
	vip, err := c.serviceVIP("one", "benchnet")
	if err != nil {
		b.Fatal(err)
	}
	oneIP := one.Addrs["benchnet"]
	// Scaled 0 -> 1 -> 0 by "name propagation".
	c.createService(b, "probe", "--replicas", "0", "--network", "benchnet", "--endpoint-mode", "dnsrr", c.whoami)

	b.Run("throughput", func(b *testing.B) {
		srv, cli := clients["h1"], clients["h2"]
		var over, under []float64
		for i := 0; i < b.N; i++ {
			u, err := iperf(c.l.Host(1).Path(), c.l.Host(2).Path(), c.l.Host(1).Addr)
			if err != nil {
				b.Fatalf("underlay: %v", err)
			}
			o, err := iperf(srv.Path, cli.Path, srv.Task.Addrs["benchnet"])
			if err != nil {
				b.Fatalf("overlay: %v", err)
			}
			under, over = append(under, u), append(over, o)
		}
		mo, mu := median(over), median(under)
		b.ReportMetric(mo/1e9, "overlay-Gbit/s")
		b.ReportMetric(mu/1e9, "underlay-Gbit/s")
		b.ReportMetric(mo/mu, "ratio")
		b.Logf("iperf3 TCP 5 s, %d rounds: overlay %.2f Gbit/s, underlay %.2f Gbit/s (medians), ratio %.2f (goal >= 0.65); overlay %v underlay %v",
			b.N, mo/1e9, mu/1e9, mo/mu, gbits(over), gbits(under))
	})

	b.Run("connect", func(b *testing.B) {
		cl := clients["h1"]
		const per = 200
		var vConn, dConn, vReq, dReq []time.Duration
		for i := 0; i < b.N; i++ {
			for j := 0; j < per; j++ {
				for _, tc := range []struct {
					addr       netip.Addr
					conn, reqs *[]time.Duration
				}{{vip, &vConn, &vReq}, {oneIP, &dConn, &dReq}} {
					cd, rd, err := connectAndGet(cl, netip.AddrPortFrom(tc.addr, 80).String())
					if err != nil {
						b.Fatalf("%s: %v", tc.addr, err)
					}
					*tc.conn, *tc.reqs = append(*tc.conn, cd), append(*tc.reqs, rd)
				}
			}
		}
		b.ReportMetric(float64(pct(vConn, 50).Microseconds()), "vip-connect-p50-µs")
		b.ReportMetric(float64(pct(dConn, 50).Microseconds()), "direct-connect-p50-µs")
		b.ReportMetric(float64(pct(vConn, 50))/float64(pct(dConn, 50)), "connect-ratio")
		b.ReportMetric(float64(pct(vReq, 99).Microseconds()), "vip-req-p99-µs")
		b.ReportMetric(float64(pct(dReq, 99).Microseconds()), "direct-req-p99-µs")
		b.Logf("connect %d x: VIP p50 %v p99 %v, direct p50 %v p99 %v (ratio of p50 %.3f, goal <= 1.05); request VIP p50 %v p99 %v, direct p50 %v p99 %v",
			len(vConn), pct(vConn, 50), pct(vConn, 99), pct(dConn, 50), pct(dConn, 99),
			float64(pct(vConn, 50))/float64(pct(dConn, 50)), pct(vReq, 50), pct(vReq, 99), pct(dReq, 50), pct(dReq, 99))
	})

	b.Run("dns", func(b *testing.B) {
		cl := clients["h1"]
		var all []time.Duration
		lost := 0
		for i := 0; i < b.N; i++ {
			rtts, l, err := dnsLoad(cl, "one", 1000, 5*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			all, lost = append(all, rtts...), lost+l
		}
		b.ReportMetric(float64(pct(all, 50).Microseconds()), "p50-µs")
		b.ReportMetric(float64(pct(all, 99).Microseconds()), "p99-µs")
		b.ReportMetric(float64(lost), "lost")
		b.Logf("DNS at 1000 q/s, %d answers: p50 %v p99 %v max %v, %d unanswered", len(all), pct(all, 50), pct(all, 99),
			pct(all, 100), lost)
	})

	b.Run("name propagation", func(b *testing.B) {
		var lat []time.Duration
		for i := 0; i < b.N; i++ {
			c.sh(h1, "service", "scale", "-d", "probe=1")
			tk := c.waitRunning(b, "probe", 1, 60*time.Second)[0]
			started, err := c.runningSince(tk.ID)
			if err != nil {
				b.Fatal(err)
			}
			ip := tk.Addrs["benchnet"]
			var last time.Time
			var mu sync.Mutex
			var wg sync.WaitGroup
			for node, ns := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := lab.Poll(10*time.Second, func() error {
						a, err := ns.lookup("tasks.probe")
						if err != nil || !slices.Contains(a.Addrs, ip) {
							return fmt.Errorf("%s: tasks.probe = %v %v", node, a.Addrs, err)
						}
						return nil
					})
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						b.Error(err)
					}
					if now := time.Now(); now.After(last) {
						last = now
					}
				}()
			}
			wg.Wait()
			lat = append(lat, last.Sub(started))
			c.sh(h1, "service", "scale", "-d", "probe=0")
			if err := lab.Poll(60*time.Second, func() error { return c.noLiveBut("probe", nil) }); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(pct(lat, 50).Milliseconds()), "p50-ms")
		b.ReportMetric(float64(pct(lat, 100).Milliseconds()), "max-ms")
		b.Logf("task RUNNING -> answered on all %d nodes: %v", len(clients), lat)
	})
}

// runningSince is the time of the task's status as the manager holds it (its RUNNING report).
func (c *ovCluster) runningSince(id string) (time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.ctl.GetTask(ctx, &api.GetTaskRequest{TaskId: id})
	if err != nil {
		return time.Time{}, err
	}
	st := r.GetTask().GetStatus()
	if st.GetState() != api.TaskState_RUNNING || st.GetTimestamp() == nil {
		return time.Time{}, fmt.Errorf("task %s: status %v", id, st)
	}
	return st.GetTimestamp().AsTime(), nil
}

// iperf runs an iperf3 server in namespace srv and a 5 s TCP client in cli toward ip, and returns the
// received bits per second.
func iperf(srv, cli string, ip netip.Addr) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	const port = "5201"
	s := exec.CommandContext(ctx, "nsenter", "--net="+srv, "--", "iperf3", "-s", "-p", port)
	s.WaitDelay = time.Second
	slog := &syncBuf{}
	s.Stdout, s.Stderr = slog, slog
	if err := s.Start(); err != nil {
		return 0, err
	}
	defer func() { s.Process.Kill(); s.Wait() }()
	// Wait until the server listens (seen by ss, without a connection that would count as a test).
	if err := lab.Poll(10*time.Second, func() error {
		out, err := exec.CommandContext(ctx, "nsenter", "--net="+srv, "--", "ss", "-Hltn", "sport = :"+port).Output()
		if err != nil || !strings.Contains(string(out), ":"+port) {
			return fmt.Errorf("iperf3 server not listening on :%s in %s (%v): %s", port, srv, err, slog.String())
		}
		return nil
	}); err != nil {
		return 0, err
	}
	var out []byte
	var err error
	for try := 0; try < 3; try++ {
		out, err = exec.CommandContext(ctx, "nsenter", "--net="+cli, "--", "iperf3", "-c", ip.String(), "-p", port,
			"-t", "5", "-J").Output()
		if err == nil || !strings.Contains(string(out), "unable to connect") {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		return 0, fmt.Errorf("iperf3 -c %s: %w: %s (server: %s)", ip, err, out, slog.String())
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, fmt.Errorf("iperf3 output: %w: %s", err, out)
	}
	if r.Error != "" || r.End.SumReceived.BitsPerSecond == 0 {
		return 0, fmt.Errorf("iperf3 -c %s: %q", ip, r.Error)
	}
	return r.End.SumReceived.BitsPerSecond, nil
}

// connectAndGet times a TCP connect from ns to addr, then one HTTP request on that connection.
func connectAndGet(ns taskNS, addr string) (connect, request time.Duration, err error) {
	var conn net.Conn
	start := time.Now()
	if err := ns.do(func() error {
		var err error
		conn, err = net.DialTimeout("tcp4", addr, 2*time.Second)
		return err
	}); err != nil {
		return 0, 0, err
	}
	connect = time.Since(start)
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	start = time.Now()
	if _, err := conn.Write([]byte("GET / HTTP/1.0\r\nHost: one\r\n\r\n")); err != nil {
		return 0, 0, err
	}
	buf := make([]byte, 4096)
	for {
		_, err := conn.Read(buf)
		if err != nil {
			break
		}
	}
	return connect, time.Since(start), nil
}

// dnsLoad sends A questions for name from ns's DNS server at rate per second for d and returns the
// answer latencies and the number of questions not answered within 1 s.
func dnsLoad(ns taskNS, name string, rate int, d time.Duration) ([]time.Duration, int, error) {
	var conn net.Conn
	if err := ns.do(func() error {
		var err error
		conn, err = net.Dial("udp4", "127.0.0.11:53")
		return err
	}); err != nil {
		return nil, 0, err
	}
	defer conn.Close()
	dc := &dns.Conn{Conn: conn}
	n := int(d.Seconds() * float64(rate))
	sent := make([]time.Time, n)
	got := make([]time.Duration, n)
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn.SetReadDeadline(time.Now().Add(time.Second))
			m, err := dc.ReadMsg()
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					return
				}
				continue
			}
			mu.Lock()
			if i := int(m.Id); i < n && !sent[i].IsZero() && got[i] == 0 {
				got[i] = time.Since(sent[i])
			}
			mu.Unlock()
		}
	}()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := 0; i < n; i++ {
		<-tick.C
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeA)
		m.Id = uint16(i)
		mu.Lock()
		sent[i] = time.Now()
		mu.Unlock()
		if err := dc.WriteMsg(m); err != nil {
			return nil, 0, err
		}
	}
	<-done
	var out []time.Duration
	lost := 0
	for _, g := range got {
		if g == 0 {
			lost++
		} else {
			out = append(out, g)
		}
	}
	return out, lost, nil
}

// syncBuf is a buffer a process writes to while the test reads it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) { b.mu.Lock(); defer b.mu.Unlock(); return b.b.Write(p) }

func (b *syncBuf) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func gbits(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f", x/1e9)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// pct is the p-th percentile (nearest rank) of ds; 100 is the maximum.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	k := int(p/100*float64(len(s))+0.999999) - 1
	return s[max(0, min(k, len(s)-1))]
}
