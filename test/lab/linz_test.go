package lab_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/test/lab"
)

// TestLinearizable: concurrent clients read and compare-and-set registers (config labels, see
// linz_history_test.go) through the control sockets of a 3-manager lab swarm of real shoald processes,
// while the test kills the leader with SIGKILL (then restarts it: it rejoins from its raft log), cuts the
// leader off from the other managers (then heals) and pauses it with SIGSTOP until another leads (then
// SIGCONT), round after round. Porcupine then checks that the whole history is linearizable.
// SHOAL_CHAOS_KILLS, SHOAL_CHAOS_PARTITIONS and SHOAL_CHAOS_PAUSES (default 10, 2, 2; make chaos: 100, 20,
// 20) set the rounds. On a violation, porcupine's HTML visualization and the history as text are written
// to linearizability/ under testutil.ArtifactDir ($SHOAL_ARTIFACT_DIR, default $TMPDIR/shoal-artifacts-<uid>) and named in the failure.
func TestLinearizable(t *testing.T) {
	testutil.RequiresContainerd(t) // and root, for the lab
	kills, partitions := envInt(t, "SHOAL_CHAOS_KILLS", 10), envInt(t, "SHOAL_CHAOS_PARTITIONS", 2)
	pauses := envInt(t, "SHOAL_CHAOS_PAUSES", 2)
	const clients, registers = 8, 3
	// Every round is bounded (a new leader within 30 s, the old one back within 60 s); the whole loop is
	// bounded too, so that a cluster that slows down fails instead of running on.
	schedule := linzSchedule(map[string]int{"kill": kills, "partition": partitions, "pause": pauses})
	budget := time.Duration(len(schedule))*45*time.Second + time.Minute

	l := lab.New(t, lab.Config{Hosts: 3, Name: "linz", ShoaldPath: lab.BuildShoald(t), ShoalPath: lab.BuildShoal(t)})
	if err := l.StartAll(); err != nil {
		t.Fatal(err)
	}
	hist := newLinzHistory()
	c := &linzCluster{t: t, l: l, conns: map[*lab.Host]*grpc.ClientConn{}, note: hist.fault}
	t.Cleanup(c.close) // runs before the lab's cleanup
	c.form()

	// The registers.
	names, ids := make([]string, registers), make([]string, registers)
	for k := range names {
		names[k] = "linz-" + strconv.Itoa(k)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		resp, err := c.ctl(l.Host(1)).CreateConfig(ctx, &api.CreateConfigRequest{Spec: &api.ConfigSpec{
			Annotations: &api.Annotations{Name: names[k], Labels: map[string]string{"v": linzInitial}},
			Data:        []byte("linz")}})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		ids[k] = resp.GetConfig().GetId()
	}

	// The clients, stopped (and waited for) before the lab goes, also when the test fails.
	ctls := make([]api.ControlClient, len(l.Hosts))
	for i, h := range l.Hosts {
		ctls[i] = c.ctl(h)
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stopClients := sync.OnceFunc(func() { stop(); wg.Wait() })
	t.Cleanup(stopClients)
	for i := range clients {
		cl := &linzClient{id: i, hist: hist, ctls: ctls, configs: names, ids: ids,
			rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(i)))}
		wg.Go(func() { cl.run(ctx) })
	}

	// The faults, each kind spread evenly over the run.
	start := time.Now()
	deadline := start.Add(budget)
	done := map[string]int{}
	for r, kind := range schedule {
		if time.Now().After(deadline) {
			t.Fatalf("fault loop over its budget of %v after %v", budget, done)
		}
		if err := c.round(kind); err != nil {
			t.Fatalf("round %d (%s; after %v): %v", r+1, kind, done, err)
		}
		done[kind]++
	}
	faults := time.Since(start)
	stopClients()
	// The final reads: every register through every manager, on a healthy cluster, after every client's
	// operation has returned or timed out (see prune).
	if _, err := c.healthy(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	for k := range ids {
		for i, h := range l.Hosts {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			call := hist.now()
			resp, err := ctls[i].GetConfig(cctx, &api.GetConfigRequest{ConfigId: ids[k]})
			ret := hist.now()
			cancel()
			if err != nil {
				t.Fatalf("final read of %s on %s: %v", names[k], h.Name, err)
			}
			hist.add(porcupine.Operation{ClientId: clients, Input: linzInput{Key: k}, Call: call,
				Output: linzOutput{Value: resp.GetConfig().GetSpec().GetAnnotations().GetLabels()["v"]}, Return: ret,
				Metadata: linzVia(i)})
		}
	}
	ops, dropped := hist.finish()
	t.Logf("fault loop: %d kills, %d partitions, %d pauses in %v; %s; %d writes of unknown outcome never seen (dropped)",
		done["kill"], done["partition"], done["pause"], faults.Round(time.Second), hist.summary(), dropped)
	took, err := checkLinearizable(ops, 5*time.Minute, linzArtifactDir(t), hist.faultLog())
	t.Logf("porcupine: %d operations checked in %v", len(ops), took.Round(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if hist.writesOK == 0 || hist.reads < 10*len(schedule) {
		t.Fatalf("too little load to mean anything: %s", hist.summary())
	}
}

// linzSchedule orders the rounds: each kind's rounds evenly spread over the run, in a fixed order.
func linzSchedule(counts map[string]int) []string {
	type slot struct {
		at   float64
		kind string
	}
	var slots []slot
	for _, kind := range []string{"kill", "partition", "pause"} {
		for i := range counts[kind] {
			slots = append(slots, slot{(float64(i) + 0.5) / float64(counts[kind]), kind})
		}
	}
	sort.SliceStable(slots, func(i, j int) bool { return slots[i].at < slots[j].at })
	out := make([]string, len(slots))
	for i, s := range slots {
		out[i] = s.kind
	}
	return out
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a count", name, s)
	}
	return n
}

// linzCluster is the test's view of the lab swarm: one gRPC connection per control socket.
type linzCluster struct {
	t     *testing.T
	l     *lab.Lab
	note  func(format string, a ...any) // records the fault loop's steps in the history's log
	mu    sync.Mutex
	conns map[*lab.Host]*grpc.ClientConn
}

func (c *linzCluster) ctl(h *lab.Host) api.ControlClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc := c.conns[h]; cc != nil {
		return api.NewControlClient(cc)
	}
	// Reconnect fast after a restart: the default backoff grows to two minutes.
	bo := backoff.DefaultConfig
	bo.MaxDelay = 500 * time.Millisecond
	cc, err := grpc.NewClient("unix://"+h.ControlSocket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: time.Second}))
	if err != nil {
		c.t.Fatal(err)
	}
	c.conns[h] = cc
	return api.NewControlClient(cc)
}

func (c *linzCluster) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cc := range c.conns {
		cc.Close()
	}
}

// form makes h1 a swarm and joins the others as managers, then waits for a healthy cluster.
func (c *linzCluster) form() {
	t, ctx := c.t, context.Background()
	h1 := c.l.Host(1)
	if _, err := h1.Shoal(ctx, "swarm", "init", "--advertise-addr", h1.APIAddr); err != nil {
		t.Fatal(err)
	}
	tok, err := h1.Shoal(ctx, "swarm", "join-token", "manager", "-q")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range c.l.Hosts[1:] {
		if _, err := h.Shoal(ctx, "swarm", "join", "--token", strings.TrimSpace(tok), "--advertise-addr", h.APIAddr, h1.APIAddr); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.healthy(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// leaderSeenBy is the host that h's manager names as leader (ListNodes, which h forwards to the leader
// it knows).
func (c *linzCluster) leaderSeenBy(h *lab.Host) (*lab.Host, []*api.Node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := c.ctl(h).ListNodes(ctx, &api.ListNodesRequest{})
	if err != nil {
		return nil, nil, fmt.Errorf("node list on %s: %w", h.Name, err)
	}
	for _, n := range resp.GetNodes() {
		if n.GetManagerStatus().GetLeader() {
			for _, x := range c.l.Hosts {
				if x.Name == n.GetDescription().GetHostname() {
					return x, resp.GetNodes(), nil
				}
			}
		}
	}
	return nil, resp.GetNodes(), fmt.Errorf("no leader in the node list on %s", h.Name)
}

// healthy waits until every host names the same leader and sees every manager reachable; it returns the
// leader.
func (c *linzCluster) healthy(within time.Duration) (*lab.Host, error) {
	var leader *lab.Host
	err := lab.Poll(within, func() error {
		leader = nil
		for _, h := range c.l.Hosts {
			ld, nodes, err := c.leaderSeenBy(h)
			if err != nil {
				return err
			}
			if leader != nil && ld != leader {
				return fmt.Errorf("%s names leader %s, others %s", h.Name, ld.Name, leader.Name)
			}
			leader = ld
			reachable := 0
			for _, n := range nodes {
				if n.GetManagerStatus().GetReachability() == api.Reachability_REACHABLE {
					reachable++
				}
			}
			if reachable != len(c.l.Hosts) {
				return fmt.Errorf("%s sees %d of %d managers reachable", h.Name, reachable, len(c.l.Hosts))
			}
		}
		return nil
	})
	return leader, err
}

// newLeader waits until a host other than old is named leader by every host but old.
func (c *linzCluster) newLeader(old *lab.Host, within time.Duration) (*lab.Host, error) {
	var leader *lab.Host
	err := lab.Poll(within, func() error {
		leader = nil
		for _, h := range c.l.Others(old) {
			ld, _, err := c.leaderSeenBy(h)
			if err != nil {
				return err
			}
			if ld == old || leader != nil && ld != leader {
				return fmt.Errorf("%s names leader %s", h.Name, ld.Name)
			}
			leader = ld
		}
		return nil
	})
	return leader, err
}

// round is one fault: "kill" SIGKILLs the leader, waits for a new one, lets the clients run against it,
// and starts the old leader again; "partition" cuts the leader off from the other managers in both
// directions (its control socket still serves the clients), waits for a new leader, holds, and heals.
// Either way it ends with a healthy cluster.
func (c *linzCluster) round(kind string) error {
	old, err := c.healthy(60 * time.Second)
	if err != nil {
		return err
	}
	hold := time.Duration(500+rand.IntN(1000)) * time.Millisecond
	c.note("%s %s (the leader)", kind, old.Name)
	defer c.note("%s %s: round over", kind, old.Name)
	switch kind {
	case "kill":
		if err := old.Kill(); err != nil {
			return err
		}
		ld, err := c.newLeader(old, 30*time.Second)
		if err != nil {
			return fmt.Errorf("no new leader after killing %s: %w", old.Name, err)
		}
		c.note("new leader %s", ld.Name)
		time.Sleep(hold)
		c.note("restart %s", old.Name)
		if err := old.Start(); err != nil {
			return err
		}
	case "partition":
		if err := old.Partition(); err != nil {
			return err
		}
		ld, err := c.newLeader(old, 30*time.Second)
		if err == nil {
			c.note("new leader %s", ld.Name)
			time.Sleep(hold)
		}
		c.note("heal %s", old.Name)
		if herr := old.Heal(); herr != nil || err != nil {
			return errors.Join(err, herr)
		}
	case "pause":
		// SIGSTOP: the leader's process stands still (a long GC pause, a stalled VM) while the others
		// elect a new leader; the calls the clients send it wait in its socket. Then SIGCONT.
		if err := old.Pause(); err != nil {
			return err
		}
		ld, err := c.newLeader(old, 30*time.Second)
		if err == nil {
			c.note("new leader %s", ld.Name)
			time.Sleep(hold)
		}
		c.note("resume %s", old.Name)
		if rerr := old.Resume(); rerr != nil || err != nil {
			return errors.Join(err, rerr)
		}
	default:
		return fmt.Errorf("unknown round %q", kind)
	}
	_, err = c.healthy(60 * time.Second)
	return err
}

// TestLinearizableModel checks the checker: the register model accepts a history that is linearizable
// only with a pending write taken as applied, and rejects a read that returns a value overwritten by a
// write that had returned before the read began (a stale read), and a conflict reported while the
// register held the expected value.
func TestLinearizableModel(t *testing.T) {
	op := func(client int, call, ret int64, in linzInput, out linzOutput) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
	}
	read := func(v string) (linzInput, linzOutput) { return linzInput{}, linzOutput{Value: v} }
	cas := func(from, to string) linzInput { return linzInput{Write: true, Expect: from, Value: to} }
	r := func(c int, call, ret int64, v string) porcupine.Operation {
		in, out := read(v)
		return op(c, call, ret, in, out)
	}
	cases := []struct {
		name string
		ops  []porcupine.Operation
		ok   bool
	}{
		{"sequential", []porcupine.Operation{
			r(0, 0, 1, linzInitial), op(0, 2, 3, cas(linzInitial, "a"), linzOutput{}), r(1, 4, 5, "a")}, true},
		{"pending write applied", []porcupine.Operation{
			op(0, 0, pending, cas(linzInitial, "a"), linzOutput{Unknown: true}), r(1, 4, 5, "a")}, true},
		{"pending write applied late", []porcupine.Operation{
			op(0, 0, pending, cas(linzInitial, "a"), linzOutput{Unknown: true}), r(1, 4, 5, linzInitial), r(1, 6, 7, "a")}, true},
		{"pending write never applied", []porcupine.Operation{
			op(0, 0, pending, cas(linzInitial, "a"), linzOutput{Unknown: true}), r(1, 4, 5, linzInitial)}, true},
		{"pending write seen before its call", []porcupine.Operation{
			r(1, 0, 1, "a"), op(0, 2, pending, cas(linzInitial, "a"), linzOutput{Unknown: true})}, false},
		{"pending write seen, then the old value", []porcupine.Operation{
			op(0, 0, pending, cas(linzInitial, "a"), linzOutput{Unknown: true}), r(1, 4, 5, "a"), r(1, 6, 7, linzInitial)}, false},
		{"conflict", []porcupine.Operation{
			op(0, 0, 1, cas(linzInitial, "a"), linzOutput{}), op(1, 2, 3, cas(linzInitial, "b"), linzOutput{Conflict: true})}, true},
		{"stale read", []porcupine.Operation{
			op(0, 0, 1, cas(linzInitial, "a"), linzOutput{}), r(1, 2, 3, linzInitial)}, false},
		{"value never written", []porcupine.Operation{r(1, 2, 3, "x")}, false},
		{"false conflict", []porcupine.Operation{
			op(1, 2, 3, cas(linzInitial, "b"), linzOutput{Conflict: true})}, false},
		{"lost write", []porcupine.Operation{
			op(0, 0, 1, cas(linzInitial, "a"), linzOutput{}), op(1, 2, 3, cas(linzInitial, "b"), linzOutput{}), r(1, 4, 5, "b")}, false},
	}
	for _, tc := range cases {
		dir := t.TempDir()
		ops, _ := prune(tc.ops)
		_, err := checkLinearizable(ops, 10*time.Second, dir, "")
		if (err == nil) != tc.ok {
			t.Errorf("%s: linearizable %v, want %v (%v)", tc.name, err == nil, tc.ok, err)
		}
		if err != nil {
			if m, _ := os.ReadDir(dir); len(m) != 2 || !strings.Contains(err.Error(), dir) {
				t.Errorf("%s: visualization not written to %s or not named: %v", tc.name, dir, err)
			}
		}
	}
}
