package scale

import (
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/testcluster"
	api "github.com/shoal-project/shoal/proto"
)

// forever is a bound in cluster time that never binds: on the wall clock
// the phases are bounded by their wall limit.
const forever = 1000 * time.Hour

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return d
}

// TestScale is the full scenario (make scale): SHOAL_SCALE_NODES nodes
// (default 1,000) and SHOAL_SCALE_TASKS tasks (default 100,000), each
// phase bounded by SHOAL_SCALE_PHASE_LIMIT of wall time (default 10m).
// SHOAL_SCALE_SERVICES (default 1) splits the tasks evenly among that
// many services (1,000 services x 1,000 tasks: SERVICES=1000,
// TASKS=1000000); every phase works on all of them. SHOAL_SCALE_TASKS=0
// stops after the idle phase (the nodes' cost alone).
// An idle phase of SHOAL_SCALE_IDLE (default 20s) after the join measures
// the cost of the nodes' sessions and heartbeats alone.
// SHOAL_SCALE_PHASES picks the phases after create (default
// create,update,drain,remove; "failover" adds SHOAL_SCALE_STEADY_KILLS
// leader kills in the steady swarm, default 5, see failover).
// SHOAL_SCALE_CPUPROFILE=phase:file[,phase:file...] writes the CPU
// profile of phases (join, idle, create, update, drain, remove; every
// phase is profiled to split its CPU by part, see cpuparts_test.go).
// SHOAL_SCALE_CATCHUP_PROFILE=file writes the CPU profile of each manager
// restarted after a leader kill, from its restart until it has caught up
// with the leader, to file.<manager>.<restart>.
// SHOAL_SCALE_HEAPPROFILE=file writes the heap profile after the join
// (and the goroutines to file.goroutines), with inline managers;
// SHOAL_SCALE_HEAPPROFILES=phase:file[,...] each manager process's at the
// end of a phase. It runs only with SHOAL_SCALE=1.
func TestScale(t *testing.T) {
	if os.Getenv("SHOAL_SCALE") == "" {
		t.Skip("the full scale scenario runs with SHOAL_SCALE=1 (make scale)")
	}
	tasks := 100_000
	if os.Getenv("SHOAL_SCALE_TASKS") != "0" {
		tasks = envInt(t, "SHOAL_SCALE_TASKS", tasks)
	} else {
		tasks = 0
	}
	phases, err := parsePhases(os.Getenv("SHOAL_SCALE_PHASES"))
	if err != nil {
		t.Fatalf("SHOAL_SCALE_PHASES: %v", err)
	}
	fleet := fleetMode{process: true}
	switch v := os.Getenv("SHOAL_SCALE_MANAGERS"); v {
	case "", "process":
		fleet.managers = true
	case "inline":
	default:
		t.Fatalf("SHOAL_SCALE_MANAGERS=%q: want process or inline", v)
	}
	switch v := os.Getenv("SHOAL_SCALE_FLEET"); v {
	case "", "process":
	case "inline":
		if fleet.managers {
			t.Fatal("SHOAL_SCALE_FLEET=inline needs SHOAL_SCALE_MANAGERS=inline: the fleet shares a process with the managers only when they share one")
		}
		fleet.process = false
	default:
		t.Fatalf("SHOAL_SCALE_FLEET=%q: want process or inline", v)
	}
	if v := os.Getenv("SHOAL_SCALE_FLEET_NICE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 19 || !fleet.process {
			t.Fatalf("SHOAL_SCALE_FLEET_NICE=%q: want 0 to 19, with the fleet in its own process", v)
		}
		fleet.nice = n
	}
	// SHOAL_SCALE_RECONNECT_SPREAD: the fleet's reconnect spread
	// (testcluster.FleetProcessOptions.ReconnectSpread; negative: none).
	fleet.spread = envDuration(t, "SHOAL_SCALE_RECONNECT_SPREAD", 0)
	runScenario(t, envInt(t, "SHOAL_SCALE_NODES", 1_000), envInt(t, "SHOAL_SCALE_SERVICES", 1), tasks,
		envDuration(t, "SHOAL_SCALE_PHASE_LIMIT", 10*time.Minute), envDuration(t, "SHOAL_SCALE_IDLE", 20*time.Second),
		phases, envInt(t, "SHOAL_SCALE_STEADY_KILLS", 5), fleet)
}

// fleetMode says where the managers and the simulated nodes run. The
// managers run each in a process of its own (managers:
// testcluster.ProcCluster) or all three in this one (testcluster.Cluster).
// The simulated nodes run in a child process of their own
// (testcluster.AddSimNodesProcess, at a nice value), or in this process
// with the managers (AddSimNodes; only when the managers are here too).
type fleetMode struct {
	managers bool
	process  bool
	nice     int
	spread   time.Duration // FleetProcessOptions.ReconnectSpread
}

func (m fleetMode) String() string {
	mgrs := "3 managers (one process)"
	if m.managers {
		mgrs = "3 managers (a process each)"
	}
	if !m.process {
		return mgrs + ", simulated nodes in the managers' process"
	}
	spread := "reconnect spread 1s"
	switch {
	case m.spread > 0:
		spread = "reconnect spread " + m.spread.String()
	case m.spread < 0:
		spread = "no reconnect spread"
	}
	return fmt.Sprintf("%s, simulated nodes in processes of their own (nice %d, %s)", mgrs, m.nice, spread)
}

// TestScaleShort is the scenario at a size `make test` affords: 200 nodes
// and 5,000 tasks, 50 and 1,000 under the race detector, first as one
// service (the fleet in a process of its own at nice 5), then as 20
// services (10 under the race detector; the fleet in this process), with
// the managers in this process; then as one service again with each
// manager in a process of its own (the leader killed with SIGKILL). It
// asserts outcomes only: the phase limits are far above the expected
// times.
func TestScaleShort(t *testing.T) {
	nodes, tasks, services := 200, 5_000, 20
	if raceDetector {
		nodes, tasks, services = 50, 1_000, 10
	}
	all, _ := parsePhases(strings.Join(phaseOrder, ","))
	t.Run("one service", func(t *testing.T) {
		runScenario(t, nodes, 1, tasks, 4*time.Minute, 0, all, 1, fleetMode{process: true, nice: 5})
	})
	def, _ := parsePhases("")
	t.Run("many services", func(t *testing.T) { runScenario(t, nodes, services, tasks, 4*time.Minute, 0, def, 0, fleetMode{}) })
	t.Run("managers in processes", func(t *testing.T) {
		runScenario(t, nodes, 1, tasks, 4*time.Minute, 0, all, 1, fleetMode{managers: true, process: true})
	})
}

// scenario is one run's state.
type scenario struct {
	t       *testing.T
	c       swarm
	fleet   fleetMode
	f       testcluster.SimFleet
	fp      *testcluster.FleetProcess // f, when the fleet has a process of its own
	r       *report
	nodes   int
	tasks   int // in all services together
	limit   time.Duration
	names   []string // the services' names
	svcIDs  []string // their IDs once created
	profile string   // phase:file
	probes  int      // write probes sent, over all kills
	stalls  int      // waits that did not move for a while, over the run (goroutine dumps)
	// catchup (SHOAL_SCALE_CATCHUP_PROFILE) is where the CPU profiles of
	// restarted managers go, from the restart until they caught up;
	// catching is the one being profiled, restarts counts them.
	catchup  string
	catching *testcluster.ProcManager
	restarts int
	// survivors are the managers profiled from just before a kill until
	// the restarted one has caught up (with catchup set).
	survivors []*testcluster.ProcManager
	mem       *memGuard
}

func runScenario(t *testing.T, nodes, services, tasks int, limit, idle time.Duration, phases map[string]bool, steadyKills int, fleet fleetMode) {
	defer pprof.SetGoroutineLabels(context.Background())
	if tasks%services != 0 || (tasks > 0 && tasks < services) {
		t.Fatalf("%d tasks do not split evenly among %d services", tasks, services)
	}
	s := &scenario{t: t, nodes: nodes, tasks: tasks, limit: limit, fleet: fleet, profile: os.Getenv("SHOAL_SCALE_CPUPROFILE"),
		catchup: os.Getenv("SHOAL_SCALE_CATCHUP_PROFILE")}
	if services == 1 {
		s.names = []string{"sim"}
	}
	for i := 0; len(s.names) < services; i++ {
		s.names = append(s.names, fmt.Sprintf("sim-%04d", i))
	}
	s.r = newReport(t, fmt.Sprintf("%s; %d simulated nodes, %d services x %d tasks, GOMAXPROCS %d",
		fleet, nodes, services, tasks/services, runtime.GOMAXPROCS(0)))
	// SHOAL_SCALE_RAFT_TICK lengthens the raft tick, as shoald's
	// --raft-tick does (election timeout 10 ticks): three managers and
	// 10,000 simulated nodes in one process on two cores starved raft's
	// goroutines past the default 1 s election timeout.
	tick := envDuration(t, "SHOAL_SCALE_RAFT_TICK", 0)
	if fleet.managers {
		logDir := os.Getenv("SHOAL_SCALE_LOG_DIR")
		if logDir != "" {
			if err := os.MkdirAll(logDir, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Logf("the managers log to %s/<name>.log", logDir)
		}
		// SHOAL_SCALE_ELECTION_HOLD: manager.Config.ElectionHold (a
		// negative duration: calls fail at once during an election).
		hold := envDuration(t, "SHOAL_SCALE_ELECTION_HOLD", 0)
		if hold != 0 {
			t.Logf("the managers hold calls during an election for at most %v (negative: never)", hold)
		}
		pc := testcluster.NewProc(t, testcluster.ProcOptions{Tick: tick, WallLimit: limit, LogDir: logDir, ElectionHold: hold})
		for _, m := range pc.Managers() {
			t.Logf("%s: pid %d, cluster API %s, probe http://%s (Go profiles under /debug/pprof/)", m.Name, m.Pid(), m.Addr, m.Probe())
		}
		s.c = procSwarm{pc}
	} else {
		s.c = inProc{testcluster.New(t, testcluster.Options{Managers: 3, NoManagerAgents: true, WallClock: true, WallLimit: limit,
			Tick: tick, Loopback: fleet.process})}
	}
	s.r.c = s.c
	harnessLabel()
	s.guardMemory()
	s.join()
	s.idle(idle)
	if tasks > 0 { // else join and idle only: the cost of nodes alone
		s.create()
		s.heapAfter("create")
		if phases["failover"] {
			s.failover(steadyKills)
			s.heapAfter("failover")
		}
		if phases["update"] {
			s.update()
			s.heapAfter("update")
		}
		if phases["drain"] {
			s.drain()
			s.heapAfter("drain")
		}
		if phases["remove"] {
			s.remove()
			s.heapAfter("remove")
		}
	}
	if err := s.c.crashed(); err != nil {
		t.Fatal(err)
	}
	st := s.f.Stats()
	t.Logf("fleet: %+v", st)
}

// harnessLabel marks the test goroutine (and the workers it starts
// from now on) as the harness in CPU profiles. Starting a manager resets
// the goroutine's labels, so it is called again after each.
func harnessLabel() {
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels(testcluster.LabelKey, "harness")))
}

// begin starts a phase and its CPU profile (kept in memory, and written
// to the file SHOAL_SCALE_CPUPROFILE names for the phase); the function it
// returns stops the profile and records the phase's CPU by part.
func (s *scenario) begin(name string) func() {
	s.r.begin(name)
	file := phaseFile(s.profile, name)
	if ps, ok := s.c.(procSwarm); ok {
		// This process only drives the managers: a profile of it would be
		// the harness's. The managers profile themselves.
		if file == "" {
			return func() {}
		}
		return s.profileManagers(ps, name, file)
	}
	prof, err := startCPUProfile(file)
	if err != nil {
		s.t.Logf("no CPU profile of %s: %v", name, err)
		return func() {}
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		parts, err := prof.stop()
		if err != nil {
			s.t.Logf("CPU profile of %s: %v", name, err)
		}
		s.r.setParts(parts)
	}
	s.t.Cleanup(stop)
	return stop
}

// phaseFile is the file a phase:file[,phase:file...] list names for
// phase, "" when none.
func phaseFile(list, phase string) string {
	file := ""
	for _, one := range strings.Split(list, ",") {
		if p, f, ok := strings.Cut(one, ":"); ok && p == phase {
			file = f
		}
	}
	return file
}

// heapAfter writes each running manager's live heap profile to
// file.<manager> when SHOAL_SCALE_HEAPPROFILES names a file for phase
// (a process per manager); it runs after the phase's report, so its
// seconds of collection count in no phase.
func (s *scenario) heapAfter(phase string) {
	file := phaseFile(os.Getenv("SHOAL_SCALE_HEAPPROFILES"), phase)
	ps, ok := s.c.(procSwarm)
	if file == "" || !ok {
		return
	}
	for _, m := range ps.c.Managers() {
		if !m.Running() {
			continue
		}
		b, err := m.HeapProfile()
		if err == nil {
			err = os.WriteFile(file+"."+m.Name, b, 0o644)
		}
		if err != nil {
			s.t.Logf("heap profile of %s after %s: %v", m.Name, phase, err)
			continue
		}
		s.t.Logf("heap profile of %s after %s: %s", m.Name, phase, file+"."+m.Name)
	}
}

// profileManagers starts a CPU profile in every running manager's process
// (ProcManager.StartCPUProfile); the function it returns stops them and
// writes each to file.<manager> (a manager killed meanwhile has none).
func (s *scenario) profileManagers(ps procSwarm, phase, file string) func() {
	var started []*testcluster.ProcManager
	for _, m := range ps.c.Managers() {
		if !m.Running() {
			continue
		}
		if err := m.StartCPUProfile(); err != nil {
			s.t.Logf("no CPU profile of %s in %s: %v", m.Name, phase, err)
			continue
		}
		started = append(started, m)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		for _, m := range started {
			s.saveCPUProfile(m, file+"."+m.Name, "CPU profile of "+m.Name+" in "+phase)
		}
	}
	s.t.Cleanup(stop)
	return stop
}

// join adds the simulated nodes and waits until they are READY.
func (s *scenario) join() {
	settle()
	before := take(s.c, nil)
	stop := s.begin("join")
	s.f, s.fp = s.c.addFleet(s.nodes, s.fleet)
	s.r.fleet = s.fp
	if s.fp != nil {
		s.t.Logf("fleet: %d nodes in %d processes (each node keeps a connection per manager within a process's open-file limit)", s.nodes, s.fp.Processes())
	}
	s.c.waitNodesReady(s.f)
	stop()
	settle()
	after := take(s.c, s.fp)
	perNode := func(a, b uint64) string {
		if b < a {
			return "n/a"
		}
		return fmt.Sprintf("%.1f KiB", float64(b-a)/1024/float64(s.nodes))
	}
	if file := os.Getenv("SHOAL_SCALE_HEAPPROFILE"); file != "" {
		if s.c.separate() {
			// This process holds no manager's heap.
			s.t.Logf("SHOAL_SCALE_HEAPPROFILE is for inline managers; with a process per manager, read a manager's heap from its probe (logged above): go tool pprof http://PROBE/debug/pprof/heap")
		} else {
			s.writeHeapProfile(file)
		}
	}
	if s.c.separate() {
		var rss []string
		for _, m := range after.managers {
			rss = append(rss, fmt.Sprintf("%s %s", m.name, perNode(0, m.rss)))
		}
		s.r.end(0, fmt.Sprintf("%d nodes READY; per node: the managers' RSS %s; the fleet process's RSS %s",
			s.nodes, strings.Join(rss, ", "), perNode(0, after.fleetRSS)))
		return
	}
	if s.fp == nil {
		s.r.end(0, fmt.Sprintf("%d nodes READY; per node (managers' side included): heap %s, goroutine stacks %s, RSS %s, %d goroutines in all",
			s.nodes, perNode(before.heap, after.heap), perNode(before.stacks, after.stacks), perNode(before.rss, after.rss), runtime.NumGoroutine()))
		return
	}
	s.r.end(0, fmt.Sprintf("%d nodes READY; per node, the managers' side: heap %s, goroutine stacks %s, RSS %s, %d goroutines in the managers' process; the fleet process's RSS %s",
		s.nodes, perNode(before.heap, after.heap), perNode(before.stacks, after.stacks), perNode(before.rss, after.rss), runtime.NumGoroutine(),
		perNode(0, after.fleetRSS)))
}

// settle collects garbage twice, so that what sync.Pools held at the
// first collection (gRPC's shared write buffers) is gone by the second.
func settle() {
	runtime.GC()
	runtime.GC()
}

// writeHeapProfile writes the heap profile (after a GC) to file, and the
// goroutine profile to file.goroutines.
func (s *scenario) writeHeapProfile(file string) {
	for name, path := range map[string]string{"heap": file, "goroutine": file + ".goroutines"} {
		out, err := os.Create(path)
		if err != nil {
			s.t.Fatal(err)
		}
		err = pprof.Lookup(name).WriteTo(out, 0)
		out.Close()
		if err != nil {
			s.t.Fatal(err)
		}
	}
}

// idle lets the nodes only heartbeat for d: the CPU of sessions and
// heartbeats (the managers' and the simulated nodes' together).
func (s *scenario) idle(d time.Duration) {
	if d <= 0 {
		return
	}
	stop := s.begin("idle")
	t := time.NewTimer(d)
	<-t.C
	stop()
	st := s.f.Stats()
	s.r.end(0, fmt.Sprintf("heartbeats only; %d heartbeats and %d errors so far, %d live sessions; sessions ended so far: %v", st.Heartbeats, st.HeartbeatErrors, st.LiveSessions, st.Ends))
}

// count counts the services' tasks (testcluster.TaskCounts) on the
// managers' side, RunningImage of image and OnDrained on the drained
// nodes; an error is a failed read (a manager being killed), which the
// caller's wait retries.
func (s *scenario) count(image string, drained []string) (testcluster.TaskCounts, error) {
	return s.c.counts(testcluster.TaskQuery{ServiceIDs: s.svcIDs, Image: image, Drained: drained})
}

// progressEvery spaces the progress lines of a long wait.
const progressEvery = 10 * time.Second

// waitUntil polls cond until it holds, failing the test after the phase
// limit with cond's last word.
func (s *scenario) waitUntil(what string, cond func() (bool, string)) {
	s.t.Helper()
	s.waitFor(what, func() (bool, string, float64) {
		ok, last := cond()
		return ok, last, -1
	})
}

// pollEvery spaces the polls of a wait: a poll reads every task (on a
// manager's side when the managers are processes, where its CPU counts in
// the managers'), so every 10 ms per 1,000 tasks, at most every 5 s. A
// wait that knows its progress polls by the time it expects to be left
// (pollNext).
func (s *scenario) pollEvery() time.Duration {
	return min(max(50*time.Millisecond, time.Duration(s.tasks/1000)*10*time.Millisecond), 5*time.Second)
}

// pollNext is the wait until the next poll of a wait whose progress went
// from p0 to p1 (fractions of the whole) in elapsed: a quarter of the time
// the rest should take at that pace, from a fifth of pollEvery to twice it.
// Few polls while much is left, and the end seen sooner: at 1,000,000
// tasks the polls of a 5-minute create cost the managers 7 s of CPU
// instead of 16.6 s, and the end is seen within 1 s instead of 5 s.
func pollNext(every, elapsed time.Duration, p0, p1 float64) time.Duration {
	if p0 < 0 || p1 <= p0 || elapsed <= 0 {
		return every
	}
	left := time.Duration(float64(elapsed) * (1 - p1) / (p1 - p0))
	return min(max(left/4, every/5), 2*every)
}

// waitFor is waitUntil for a cond that also reports its progress (the
// fraction done, or -1 when it cannot tell).
func (s *scenario) waitFor(what string, cond func() (bool, string, float64)) {
	s.t.Helper()
	deadline := time.Now().Add(s.limit)
	every := s.pollEvery()
	poll := time.NewTimer(every)
	defer poll.Stop()
	lastAt, lastP := time.Now(), -1.0
	// A line every progressEvery shows where a long wait stands (and
	// where a stall began).
	began, logged := time.Now(), time.Now()
	// A wait whose state has not moved for stallDumpAfter gets, once per
	// stall, a goroutine dump of every manager in SHOAL_SCALE_LOG_DIR:
	// run b of session 21 committed nothing for 80 s and the dumps taken
	// by hand came after it had recovered.
	const stallDumpAfter = 20 * time.Second
	lastState, movedAt, dumped := "", time.Now(), false
	for {
		if err := s.c.crashed(); err != nil {
			s.t.Fatalf("%s: %v", what, err)
		}
		if low := s.mem.check(); low != "" {
			s.t.Fatalf("%s: %s; fleet %+v", what, low, s.f.Stats())
		}
		ok, last, p := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: not within %v: %s; fleet %+v", what, s.limit, last, s.f.Stats())
		}
		if last != lastState {
			lastState, movedAt, dumped = last, time.Now(), false
		} else if dir := os.Getenv("SHOAL_SCALE_LOG_DIR"); !dumped && dir != "" && time.Since(movedAt) >= stallDumpAfter {
			dumped = true
			s.stalls++
			tag := fmt.Sprintf("stall%d", s.stalls)
			err := s.c.goroutines(dir, tag)
			s.t.Logf("%s: no change for %v (%s): the managers' goroutines are in %s/<name>-%s.goroutines.txt (%v)",
				what, time.Since(movedAt).Round(time.Second), last, dir, tag, err)
		}
		if time.Since(logged) >= progressEvery {
			logged = time.Now()
			s.t.Logf("%s: %v in: %s", what, time.Since(began).Round(time.Second), last)
		}
		now := time.Now()
		poll.Reset(pollNext(every, now.Sub(lastAt), lastP, p))
		lastAt, lastP = now, p
		<-poll.C
	}
}

func (s *scenario) spec(name, image string) *api.ServiceSpec {
	replicas := s.tasks / len(s.names)
	return &api.ServiceSpec{
		Annotations: &api.Annotations{Name: name},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: image, Args: []string{"sleep", "3600"}}},
		Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: uint64(replicas)}},
		// Ten batches, no monitoring period: the roll is bounded by the
		// control plane, not by waits.
		Update: &api.UpdateConfig{Parallelism: uint64(max(replicas/10, 1)), Monitor: durationpb.New(0)},
	}
}

// create makes the services (8 Control API calls at a time) and waits
// until every task runs; the time runs from the first call.
func (s *scenario) create() {
	stop := s.begin("create")
	start := time.Now()
	s.svcIDs = make([]string, len(s.names))
	s.parallel("create services", len(s.names), func(ctx context.Context, cl api.ControlClient, i int) error {
		var svc *api.Service
		resp, err := cl.CreateService(ctx, &api.CreateServiceRequest{Spec: s.spec(s.names[i], "sim:1")})
		if err == nil {
			svc = resp.Service
		} else if errdefs.IsAlreadyExists(errdefs.FromGRPC(err)) { // an earlier attempt went through
			svc, err = s.service(ctx, cl, s.names[i])
		}
		if err == nil {
			s.svcIDs[i] = svc.Id
		}
		return err
	})
	var placedAt time.Duration
	downBefore := s.markedDown()
	replaced := 0
	s.waitFor("every task RUNNING", func() (bool, string, float64) {
		n, err := s.count("sim:1", nil)
		if err != nil {
			return false, err.Error(), -1
		}
		if placedAt == 0 && n.Placed == s.tasks {
			placedAt = time.Since(start)
		}
		// Tasks beyond s.tasks are ones replaced (their nodes were marked
		// down): they stay as history, so waiting for Total to come back
		// would wait out the phase's limit.
		replaced = n.Total - s.tasks
		return n.Running == s.tasks, fmt.Sprintf("%+v", n), float64(n.Running) / float64(s.tasks)
	})
	stop()
	down := s.markedDown() - downBefore
	detail := fmt.Sprintf("%d services created, all placed after %v", len(s.names), placedAt.Round(time.Millisecond))
	if replaced > 0 || down > 0 {
		detail += fmt.Sprintf("; %d nodes marked down, %d tasks replaced so far", down, replaced)
	}
	detail += "; " + s.fleetBeats()
	s.r.end(s.tasks, detail)
	if replaced > 0 || down > 0 {
		// Tasks of a node marked down near the end count as running
		// until the orchestrator replaces them: the nodes say it first.
		s.t.Errorf("create: %d nodes were marked down for missed heartbeats and %d tasks replaced so far: the managers' logs say which and why (an overloaded leader, an election, a reconnect storm)", down, replaced)
	}
}

// fleetBeats words the fleet's heartbeat round trips and session ends so
// far: a node whose heartbeats are answered late is silent to the leader.
func (s *scenario) fleetBeats() string {
	st := s.f.Stats()
	return fmt.Sprintf("the fleet's heartbeats so far: %d, over 1s %d, over 2.5s %d, over 5s %d, longest %v, %d failed; sessions ended %d",
		st.Heartbeats, st.SlowHeartbeats["1s"], st.SlowHeartbeats["2.5s"], st.SlowHeartbeats["5s"], st.HeartbeatMax.Round(time.Millisecond), st.HeartbeatErrors, st.SessionsEnded)
}

// markedDown sums the nodes the running managers' dispatchers marked down.
func (s *scenario) markedDown() uint64 {
	var n uint64
	for _, m := range s.c.managers() {
		n += m.markedDown
	}
	return n
}

// update rolls a new image through the tasks, kills the leader
// SHOAL_SCALE_KILLS times (default 1), every SHOAL_SCALE_KILL_SPACING
// tasks updated (default TASKS/(KILLS+3): with 1 kill, once a quarter of
// the tasks run the new image), each time measuring how long
// until a new leader accepts a write and restarting the old leader, and
// waits for the roll to complete. It also records the most simulated
// nodes seen not READY at once: a node marked down has its tasks
// rescheduled, which a failover must not cause.
func (s *scenario) update() {
	kills := envInt(s.t, "SHOAL_SCALE_KILLS", 1)
	stop := s.begin("update")
	s.parallel("update services", len(s.names), func(ctx context.Context, cl api.ControlClient, i int) error {
		svc, err := s.service(ctx, cl, s.svcIDs[i])
		if err != nil {
			return err
		}
		if svc.GetSpec().GetTask().GetContainer().GetImage() == "sim:2" {
			return nil // an earlier attempt went through
		}
		spec := proto.Clone(svc.Spec).(*api.ServiceSpec)
		spec.Task.Container.Image = "sim:2"
		_, err = cl.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: svc.Id, ServiceVersion: svc.Meta.Version, Spec: spec})
		return err
	})
	maxNotReady := 0
	watchReady := func() {
		maxNotReady = max(maxNotReady, s.notReady())
	}
	var failovers []time.Duration
	var killedAt []int
	probes := 0
	spacing := envInt(s.t, "SHOAL_SCALE_KILL_SPACING", max(s.tasks/(kills+3), 1))
	for k := 0; k < kills; k++ {
		want := min(spacing*(k+1), s.tasks)
		s.waitUntil(fmt.Sprintf("%d tasks updated before kill %d", want, k+1), func() (bool, string) {
			watchReady()
			n, err := s.count("sim:2", nil)
			if err != nil {
				return false, err.Error()
			}
			return n.RunningImage >= want, fmt.Sprintf("%+v", n)
		})
		if k > 0 {
			s.waitCaughtUp()
		}
		n, _ := s.count("sim:2", nil)
		killedAt = append(killedAt, n.RunningImage)
		took, p := s.killLeader()
		failovers = append(failovers, took)
		probes += p
	}
	s.waitUntil("the update to complete", func() (bool, string) {
		watchReady()
		n, err := s.count("sim:2", nil)
		if err != nil {
			return false, err.Error()
		}
		return n.UpdatesCompleted == len(s.names) && n.RunningImage == s.tasks && n.Total >= s.tasks,
			fmt.Sprintf("%d of %d updates completed, %+v", n.UpdatesCompleted, len(s.names), n)
	})
	stop()
	s.r.end(s.tasks, fmt.Sprintf("leader killed %d times (with %v tasks updated); a new leader accepted a write after %s (%d probes); at most %d nodes not READY at once, %d now",
		kills, killedAt, failoverSummary(failovers), probes, maxNotReady, s.notReady()))
}

// failoverSummary lists the failover times and, for several, their p50
// and p99 (nearest rank: with fewer than 100 kills, p99 is the maximum).
func failoverSummary(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, d.Round(time.Millisecond).String())
	}
	out := strings.Join(parts, ", ")
	if len(ds) < 2 {
		return out
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(sorted)))) - 1
		return sorted[min(max(i, 0), len(sorted)-1)]
	}
	return fmt.Sprintf("%s: p50 %v, p99 %v", out, rank(0.5).Round(time.Millisecond), rank(0.99).Round(time.Millisecond))
}

// waitCaughtUp waits until every manager runs and has applied what the
// leader had, so the next kill leaves a quorum that can elect at once.
func (s *scenario) waitCaughtUp() {
	var leader uint64 // the leader's applied index when first seen
	s.waitUntil("every manager caught up with the leader", func() (bool, string) {
		ms := s.c.managers()
		for _, m := range ms {
			if leader == 0 && m.leading {
				leader = m.applied
			}
		}
		if leader == 0 {
			return false, "no leader"
		}
		for _, m := range ms {
			if !m.running {
				return false, m.name + " not running"
			}
			if m.applied < leader {
				return false, fmt.Sprintf("%s applied %d of %d", m.name, m.applied, leader)
			}
		}
		return true, ""
	})
	s.stopCatchUpProfile()
}

// killLeader kills the leader and probes with writes (a secret each)
// through the surviving managers, a new one every 50 ms whether or not the
// earlier ones have answered, until one is accepted; then it starts the
// old leader again. The time runs from the kill signal to the first
// probe's answer of success: it includes the old leader's exit (logged
// apart), the election and the new leader's barrier; a probe waits at most
// 2 s.
func (s *scenario) killLeader() (time.Duration, int) {
	// The managers' names, read before the clock starts: asking each
	// survivor's probe for its state between probes (as this loop did
	// until session 21) took up to a second of a busy survivor's time
	// and counted it in the failover.
	var names []string
	for _, m := range s.c.managers() {
		names = append(names, m.name)
	}
	s.profileSurvivors()
	var start time.Time // the kill signal's, not the search for the leader's
	killed, restart := s.c.killLeader(func() { start = time.Now() })
	stopped := time.Since(start)
	deadline := start.Add(s.limit)
	// A probe starts every probeEvery through the survivors in turn, each
	// with probeTimeout, while earlier ones may still wait (a call held
	// by a survivor during the election, or forwarded to the dead leader
	// until its connection breaks): the time is the first probe's answer
	// of success. One probe at a time, as until session 21, measured
	// the probes' timeouts too: a probe sent before the election waited
	// for its own deadline after the write had gone through.
	const probeEvery, probeTimeout, probesInFlight = 50 * time.Millisecond, 2 * time.Second, 64
	type outcome struct {
		line string
		ok   bool
		at   time.Duration
	}
	results := make(chan outcome, probesInFlight)
	ctx, cancelProbes := context.WithCancel(context.Background())
	inFlight, probes := 0, 0
	var timeline []string // each probe: via, from-to (s after the kill's start), outcome
	var took time.Duration
	tick := time.NewTicker(probeEvery)
	for accepted := false; !accepted; {
		if err := s.c.crashed(); err != nil {
			s.t.Fatalf("waiting for a new leader to accept a write: %v", err)
		}
		if low := s.mem.check(); low != "" {
			s.t.Fatalf("waiting for a new leader to accept a write: %s", low)
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no new leader accepted a write within %v (%d probes); fleet %+v", s.limit, probes, s.f.Stats())
		}
		if inFlight < probesInFlight {
			name := names[probes%len(names)]
			if name == killed {
				probes++
				name = names[probes%len(names)]
			}
			probes++
			s.probes++ // names unique over every kill of the run
			inFlight++
			go func(name string, n int) {
				sent := time.Since(start)
				pctx, cancel := context.WithTimeout(ctx, probeTimeout)
				_, err := s.c.controlVia(name).CreateSecret(pctx, &api.CreateSecretRequest{Spec: &api.SecretSpec{
					Annotations: &api.Annotations{Name: fmt.Sprintf("probe-%d", n)}, Data: []byte("x")}})
				cancel()
				at := time.Since(start)
				results <- outcome{fmt.Sprintf("%s %.2f-%.2fs %s", name, sent.Seconds(), at.Seconds(), probeOutcome(err)), err == nil, at}
			}(name, s.probes)
		}
		for waiting := true; waiting && !accepted; {
			select {
			case r := <-results:
				inFlight--
				timeline = append(timeline, r.line)
				if r.ok {
					accepted, took = true, r.at
				}
			case <-tick.C:
				waiting = false
			}
		}
	}
	tick.Stop()
	cancelProbes()
	canceled := 0
	for ; inFlight > 0; inFlight-- {
		<-results // canceled once one was accepted
		canceled++
	}
	if canceled > 0 {
		timeline = append(timeline, fmt.Sprintf("%d more in flight, canceled", canceled))
	}
	s.t.Logf("leader %s killed (stopping it took %v): a write was accepted %v after the kill began (%d probes: %s)",
		killed, stopped.Round(time.Millisecond), took.Round(time.Millisecond), probes, strings.Join(timeline[max(len(timeline)-8, 0):], "; "))
	restart()
	harnessLabel()
	s.profileCatchUp(killed)
	return took, probes
}

// probeOutcome words a probe's result for the kill's timeline: "ok", or
// the gRPC code and the start of the message.
func probeOutcome(err error) string {
	if err == nil {
		return "ok"
	}
	st, _ := status.FromError(err)
	msg := st.Message()
	if len(msg) > 60 {
		msg = msg[:60]
	}
	return fmt.Sprintf("%v %q", st.Code(), msg)
}

// profileCatchUp starts a CPU profile of the restarted manager name when
// SHOAL_SCALE_CATCHUP_PROFILE is set (managers in processes only);
// waitCaughtUp stops it once the manager has caught up and writes it to
// <file>.<name>.<restart>.
func (s *scenario) profileCatchUp(name string) {
	ps, ok := s.c.(procSwarm)
	if s.catchup == "" || !ok {
		return
	}
	m := named(ps.c.Managers(), name, func(m *testcluster.ProcManager) string { return m.Name })
	s.survivors = slices.DeleteFunc(s.survivors, func(o *testcluster.ProcManager) bool { return o.Name == name })
	s.restarts++
	if err := m.StartCPUProfile(); err != nil {
		s.t.Logf("no catch-up profile of %s: %v", name, err)
		return
	}
	s.catching = m
}

// profileSurvivors starts, when SHOAL_SCALE_CATCHUP_PROFILE is set, a CPU
// profile of every manager just before a leader kill (before its clock
// starts): the killed one's is lost with it, the survivors' run through the
// election and the reconnect storm until the restarted manager has caught
// up, and are written to <file>.survivor-<name>.<restart>. The profiling
// costs the managers a few per cent of CPU in the failover it measures.
func (s *scenario) profileSurvivors() {
	ps, ok := s.c.(procSwarm)
	if s.catchup == "" || !ok {
		return
	}
	s.survivors = s.survivors[:0]
	for _, m := range ps.c.Managers() {
		if err := m.StartCPUProfile(); err != nil {
			s.t.Logf("no failover profile of %s: %v", m.Name, err)
			continue
		}
		s.survivors = append(s.survivors, m)
	}
}

// stopCatchUpProfile ends profileCatchUp's profile and profileSurvivors',
// if they run.
func (s *scenario) stopCatchUpProfile() {
	for _, m := range s.survivors {
		s.saveCPUProfile(m, fmt.Sprintf("%s.survivor-%s.%d", s.catchup, m.Name, s.restarts), "failover profile of survivor "+m.Name)
	}
	s.survivors = nil
	m := s.catching
	if m == nil {
		return
	}
	s.catching = nil
	s.saveCPUProfile(m, fmt.Sprintf("%s.%s.%d", s.catchup, m.Name, s.restarts), "catch-up profile of "+m.Name)
}

// saveCPUProfile stops m's CPU profile and writes it to file, logging
// what as written or failed.
func (s *scenario) saveCPUProfile(m *testcluster.ProcManager, file, what string) {
	b, err := m.StopCPUProfile()
	if err == nil {
		err = os.WriteFile(file, b, 0o644)
	}
	if err != nil {
		s.t.Logf("%s: %v", what, err)
		return
	}
	s.t.Logf("%s: %s", what, file)
}

// notReady counts the simulated nodes that are not READY (all of them
// when the read fails).
func (s *scenario) notReady() int {
	ids := s.f.NodeIDs()
	n, err := s.c.notReady(ids)
	if err != nil {
		s.t.Logf("reading the nodes' states: %v", err)
		return len(ids)
	}
	return n
}

// service gets a service by ID or name through the Control API.
func (s *scenario) service(ctx context.Context, cl api.ControlClient, idOrName string) (*api.Service, error) {
	resp, err := cl.GetService(ctx, &api.GetServiceRequest{ServiceId: idOrName})
	if err != nil {
		return nil, err
	}
	return resp.Service, nil
}

// drain drains a tenth of the nodes (8 Control API calls at a time) and
// waits until their tasks run elsewhere.
func (s *scenario) drain() {
	stop := s.begin("drain")
	nodes := s.f.NodeIDs()[:max(s.nodes/10, 1)]
	before, err := s.count("sim:2", nodes)
	if err != nil {
		s.t.Fatalf("drain: %v", err)
	}
	moving := before.DesiredOnDrained
	s.parallel("drain nodes", len(nodes), func(ctx context.Context, cl api.ControlClient, i int) error {
		resp, err := cl.GetNode(ctx, &api.GetNodeRequest{NodeId: nodes[i]})
		if err != nil {
			return err
		}
		spec := proto.Clone(resp.Node.Spec).(*api.NodeSpec)
		spec.Availability = api.Availability_DRAIN
		_, err = cl.UpdateNode(ctx, &api.UpdateNodeRequest{NodeId: nodes[i], NodeVersion: resp.Node.Meta.Version, Spec: spec})
		return err
	})
	s.waitUntil("the drained nodes' tasks to run elsewhere", func() (bool, string) {
		n, err := s.count("sim:2", nodes)
		if err != nil {
			return false, err.Error()
		}
		return n.OnDrained == 0 && n.Running == s.tasks, fmt.Sprintf("%+v", n)
	})
	stop()
	s.r.end(moving, fmt.Sprintf("%d nodes drained, %d tasks moved", len(nodes), moving))
}

// remove removes the services (8 calls at a time), and waits until no
// task is left.
func (s *scenario) remove() {
	stop := s.begin("remove")
	s.parallel("remove services", len(s.svcIDs), func(ctx context.Context, cl api.ControlClient, i int) error {
		_, err := cl.RemoveService(ctx, &api.RemoveServiceRequest{ServiceId: s.svcIDs[i]})
		if errdefs.IsNotFound(errdefs.FromGRPC(err)) {
			return nil // an earlier attempt went through
		}
		return err
	})
	s.waitUntil("every task removed", func() (bool, string) {
		n, err := s.count("", nil)
		if err != nil {
			return false, err.Error()
		}
		return n.Total == 0, fmt.Sprintf("%d tasks left", n.Total)
	})
	stop()
	s.r.end(s.tasks, fmt.Sprintf("%d services removed, every task deleted", len(s.svcIDs)))
}
