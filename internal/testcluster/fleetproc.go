package testcluster

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	rpprof "runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/shoal-project/shoal/internal/simagent"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
)

// A fleet process is the test binary run again as a child (see
// RunFleetProcessIfAsked), holding a simagent.Fleet whose nodes dial the
// managers' loopback ports (Options.Loopback). The simulated nodes stand
// for machines of their own: in a process of their own they no longer
// share the managers' Go scheduler (at 10,000 nodes, some 170,000
// goroutines), and the kernel shares the cores between the two processes,
// with the fleet's priority lowered by FleetProcessOptions.Nice.
//
// The protocol is JSON lines. On the child's stdin: one fleetConfig, then
// one fleetNode per node to start; stdin's end (the parent closed it, or
// died) makes the child close its fleet and exit. On its stdout: the
// fleet's simagent.Stats every statsEvery, and once more at the end. Its
// stderr is the parent's.

// fleetEnv marks the child: RunFleetProcessIfAsked runs the fleet when it
// is set.
const fleetEnv = "SHOAL_TESTCLUSTER_FLEET_PROCESS"

// fleetProfileEnv names a file for a CPU profile of the whole fleet
// process, from its start to its end (the environment is the parent's:
// set it for the test that starts the fleet). Each fleet process writes
// its own: the file's name, a dot and the process ID.
const fleetProfileEnv = "SHOAL_TESTCLUSTER_FLEET_CPUPROFILE"

// profileToFile starts a CPU profile written to file; stop ends it.
func profileToFile(file string) (stop func(), err error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("fleet CPU profile: %w", err)
	}
	if err := rpprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("fleet CPU profile: %w", err)
	}
	return func() {
		rpprof.StopCPUProfile()
		f.Close()
	}, nil
}

// statsEvery is how often the child reports its counters.
const statsEvery = 250 * time.Millisecond

type fleetConfig struct {
	Managers        []string // loopback addresses
	CAPEM           []byte
	ReconnectSpread time.Duration // simagent.Config.ReconnectSpread
}

type fleetNode struct {
	ID, Name  string
	Cert, Key []byte // PEM
}

// FleetProcessOptions configures AddSimNodesProcess.
type FleetProcessOptions struct {
	// Nice is the child's nice value (0: the parent's priority; 1..19
	// lower it). On two cores a fleet of 10,000 nodes at equal priority
	// takes half the CPU whenever it has work.
	Nice int
	// Processes is the child processes the nodes are spread over (round
	// robin). 0: as few as let every node keep a connection to every
	// manager within a process's open-file limit (fleetProcesses), as
	// each real agent can: where the limit cannot be raised (20,000 on
	// this machine), a single process of 10,000 nodes had to close
	// connections it would use again, and after each leader kill its
	// nodes made some 125,000 TLS handshakes where 30,000 would do.
	Processes int
	// ReconnectSpread is simagent.Config.ReconnectSpread: 0, as the real
	// agent at the default heartbeat (a fifth of it, 1 s); negative: none
	// (only the backoff's first 50-100 ms, for A/B runs).
	ReconnectSpread time.Duration
}

// fleetProcesses is the child processes n nodes dialing managers managers
// need so that each node keeps a connection per manager within a
// process's connection budget (budget 0: no limit).
func fleetProcesses(n, managers, budget int) int {
	if budget <= 0 || n <= 0 {
		return 1
	}
	need := n * max(managers, 1)
	return max((need+budget-1)/budget, 1)
}

// FleetProcess is a fleet of simulated nodes in child processes (one, or
// as many as FleetProcessOptions.Processes says). Its methods are safe for
// concurrent use; it stops in Close (Cluster.Close calls it).
type FleetProcess struct {
	tb   testing.TB
	kids []*fleetChild

	mu     sync.Mutex
	ids    []string
	closed bool
}

// fleetChild is one child process of a FleetProcess.
type fleetChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	enc   *json.Encoder // on stdin, used by AddSimNodesProcess only
	read  chan struct{} // closed when stdout is drained

	exited chan struct{} // closed when the child has been waited for

	mu      sync.Mutex
	stats   simagent.Stats
	waitErr error
}

// RunFleetProcessIfAsked runs the fleet of a fleet process, or the
// manager of a manager process (NewProc), and exits, when this process is
// one (AddSimNodesProcess and NewProc start the test binary again with an
// environment variable set); otherwise it returns at once. A test package
// that calls either calls it first thing in TestMain.
func RunFleetProcessIfAsked() {
	for _, child := range []struct {
		env, what string
		run       func(io.Reader, io.Writer) error
	}{{fleetEnv, "fleet process", runFleet}, {managerEnv, "manager process", runManager}} {
		if os.Getenv(child.env) == "" {
			continue
		}
		if _, err := raiseFileLimit(childFileLimit); err != nil {
			// Not fatal: a small fleet needs few sockets; a big one
			// shows "too many open files" in its session-end causes.
			fmt.Fprintf(os.Stderr, "%s: %v\n", child.what, err)
		}
		if err := child.run(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", child.what, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// runFleet is the child's side: it reads the config and the nodes from in
// and writes the fleet's stats to out, until in ends.
func runFleet(in io.Reader, out io.Writer) error {
	if file := os.Getenv(fleetProfileEnv); file != "" {
		stop, err := profileToFile(fmt.Sprintf("%s.%d", file, os.Getpid()))
		if err != nil {
			return err
		}
		defer stop()
	}
	dec := json.NewDecoder(bufio.NewReaderSize(in, 1<<20))
	var cfg fleetConfig
	if err := dec.Decode(&cfg); err != nil {
		return fmt.Errorf("read the config: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(cfg.CAPEM) {
		return errors.New("the config's CA certificate is not PEM")
	}
	var err error
	f := simagent.New(simagent.Config{Managers: func() []string { return cfg.Managers }, Logger: envLogger(), MaxConns: fleetConnBudget(),
		ReconnectSpread: cfg.ReconnectSpread})
	enc := json.NewEncoder(out)
	stop := make(chan struct{})
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		t := time.NewTicker(statsEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if enc.Encode(f.Stats()) != nil {
					return // the parent is gone; stdin ends too
				}
			}
		}
	}()
	var d net.Dialer
	dial := func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	for err == nil {
		var n fleetNode
		if err = dec.Decode(&n); err != nil {
			break
		}
		var kp *pki.KeyPair
		if kp, err = pki.NewKeyPair(n.Cert, n.Key); err != nil {
			break
		}
		_, err = f.Add(n.ID, n.Name, simDialer(f.CountHandshakes(credentials.NewTLS(pki.ClientConfig(kp, pool, pki.ManagerServerName))), dial))
	}
	f.Close()
	close(stop)
	<-reported
	if errors.Is(err, io.EOF) {
		return enc.Encode(f.Stats())
	}
	return err
}

// AddSimNodesProcess joins n simulated worker nodes, as AddSimNodes, but
// runs them in a child process: the test binary started again (its
// TestMain must call RunFleetProcessIfAsked), whose nodes connect over
// TCP to the managers' loopback ports. It needs Options.Loopback. The
// child stops in Close or Cluster.Close; it also exits when this process
// dies (its stdin ends).
func (c *Cluster) AddSimNodesProcess(n int, o FleetProcessOptions) *FleetProcess {
	c.tb.Helper()
	if !c.opts.Loopback {
		c.tb.Fatal("testcluster: AddSimNodesProcess needs Options.Loopback")
	}
	var addrs []string
	for _, m := range c.Managers() {
		addrs = append(addrs, m.TCPAddr)
	}
	p := startFleetProcess(c.tb, n, addrs, c.ca.CertPEM(), o)
	c.mu.Lock()
	c.fleets = append(c.fleets, p)
	c.mu.Unlock()
	c.joinSimNodes(n, c.recordSimNodes, p.add)
	return p
}

// startFleetProcess starts the child processes of a fleet of n nodes
// whose nodes dial addrs and trust the root CA caPEM; its nodes come with
// add.
func startFleetProcess(tb testing.TB, n int, addrs []string, caPEM []byte, o FleetProcessOptions) *FleetProcess {
	tb.Helper()
	if o.Nice < 0 || o.Nice > 19 {
		tb.Fatalf("testcluster: fleet process nice value %d: want 0 to 19", o.Nice)
	}
	if o.Processes < 0 {
		tb.Fatalf("testcluster: %d fleet processes: want 0 (as many as the open-file limit needs) or more", o.Processes)
	}
	kids := o.Processes
	if kids == 0 {
		// The children inherit this process's limit (and try to raise
		// it further); raise it here first so the count uses what they get.
		_, _ = raiseFileLimit(childFileLimit)
		kids = fleetProcesses(n, len(addrs), fleetConnBudget())
	}
	p := &FleetProcess{tb: tb}
	for range kids {
		cmd, stdin, stdout := startChild(tb, fleetEnv, o.Nice, nil)
		k := &fleetChild{cmd: cmd, stdin: stdin, enc: json.NewEncoder(stdin), read: make(chan struct{}), exited: make(chan struct{})}
		p.kids = append(p.kids, k)
		go k.readStats(stdout)
		go func() {
			<-k.read // Wait closes stdout: read it all first
			err := cmd.Wait()
			k.mu.Lock()
			k.waitErr = err
			k.mu.Unlock()
			close(k.exited)
		}()
		spread := o.ReconnectSpread
		switch {
		case spread == 0:
			spread = api.DefaultHeartbeatPeriod / 5
		case spread < 0:
			spread = 0
		}
		if err := k.enc.Encode(fleetConfig{Managers: addrs, CAPEM: caPEM, ReconnectSpread: spread}); err != nil {
			p.hint(k, err)
		}
	}
	return p
}

// startChild starts the test binary again as a child process with env set
// to 1, at nice value nice, with its stdin and stdout piped and its
// stderr the parent's, or stderr when not nil.
func startChild(tb testing.TB, env string, nice int, stderr *os.File) (*exec.Cmd, io.WriteCloser, io.ReadCloser) {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	// -test.run=^$: a binary whose TestMain does not run the child runs
	// no test and exits, and the first write to it fails with a hint.
	args := []string{exe, "-test.run=^$"}
	if nice > 0 {
		args = append([]string{"nice", "-n", strconv.Itoa(nice)}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env+"=1")
	cmd.Stderr = os.Stderr
	if stderr != nil {
		cmd.Stderr = stderr
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start a child process (%s): %v", env, err)
	}
	return cmd, stdin, stdout
}

// childHint is the likely cause when a child process fails at once.
const childHint = "is testcluster.RunFleetProcessIfAsked the first call in the test package's TestMain?"

// hint fails the test with err, the child's state and childHint.
func (p *FleetProcess) hint(k *fleetChild, err error) {
	p.tb.Helper()
	p.tb.Fatalf("fleet process (%s): %v (%s)", k.exit(), err, childHint)
}

// add starts one node in the next child, round robin.
func (p *FleetProcess) add(s simNode) {
	p.tb.Helper()
	p.mu.Lock()
	k := p.kids[len(p.ids)%len(p.kids)]
	p.ids = append(p.ids, s.id)
	// Under the lock: a child's stdin takes one node's line at a time.
	err := k.enc.Encode(fleetNode{ID: s.id, Name: s.name, Cert: s.cert, Key: s.key})
	p.mu.Unlock()
	if err != nil {
		p.hint(k, err)
	}
}

// readStats keeps the child's latest counters.
func (k *fleetChild) readStats(r io.Reader) {
	defer close(k.read)
	dec := json.NewDecoder(r)
	for {
		var st simagent.Stats
		if dec.Decode(&st) != nil {
			_, _ = io.Copy(io.Discard, r)
			return
		}
		k.mu.Lock()
		k.stats = st
		k.mu.Unlock()
	}
}

// exit says whether and how the child ended.
func (k *fleetChild) exit() string {
	select {
	case <-k.exited:
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.waitErr == nil {
			return "exited"
		}
		return k.waitErr.Error()
	case <-time.After(time.Second):
		return "running"
	}
}

// NodeIDs lists the IDs of the fleet's nodes in the order they were added.
func (p *FleetProcess) NodeIDs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ids...)
}

// Stats returns the fleet's counters, summed over its children, as they
// last reported them (at most statsEvery old while they run; final after
// Close). Nodes counts the nodes the children have started.
func (p *FleetProcess) Stats() simagent.Stats {
	var sum simagent.Stats
	for _, k := range p.kids {
		k.mu.Lock()
		sum.Add(k.stats)
		k.mu.Unlock()
	}
	return sum
}

// Processes is the number of child processes.
func (p *FleetProcess) Processes() int { return len(p.kids) }

// Usage sums the children's CPU time (user and system) and resident set
// sizes, read from /proc; zeros once they have exited.
func (p *FleetProcess) Usage() (cpu time.Duration, rss uint64) {
	for _, k := range p.kids {
		c, r := Usage(k.cmd.Process.Pid)
		cpu += c
		rss += r
	}
	return cpu, rss
}

// Usage reads a process's CPU time (user and system) and resident set
// size from /proc; zeros once it has exited.
func Usage(pid int) (cpu time.Duration, rss uint64) {
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
		// Fields after the command's closing parenthesis: utime and stime
		// are the 12th and 13th, in clock ticks of 10 ms (USER_HZ is 100
		// on Linux).
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 {
			f := strings.Fields(string(b[i+1:]))
			if len(f) > 12 {
				ut, _ := strconv.ParseUint(f[11], 10, 64)
				st, _ := strconv.ParseUint(f[12], 10, 64)
				cpu = time.Duration(ut+st) * 10 * time.Millisecond
			}
		}
	}
	return cpu, RSS(strconv.Itoa(pid))
}

// RSS reads a process's resident set size (VmRSS) from /proc/<pid>/status;
// pid "self" is this process. It returns 0 where there is none (the process
// has exited).
func RSS(pid string) uint64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// Close ends the children's stdin, so that they close every node and
// exit, and waits for that (up to two minutes, then kills them); an
// unclean end fails the test. Safe to call more than once.
func (p *FleetProcess) Close() {
	p.mu.Lock()
	closed := p.closed
	p.closed = true
	p.mu.Unlock()
	if closed {
		for _, k := range p.kids {
			<-k.exited
		}
		return
	}
	for _, k := range p.kids {
		_ = k.stdin.Close()
	}
	end := time.Now().Add(2 * time.Minute)
	for _, k := range p.kids {
		select {
		case <-k.exited:
			k.mu.Lock()
			err := k.waitErr
			k.mu.Unlock()
			if err != nil {
				p.tb.Errorf("fleet process: %v", err)
			}
		case <-time.After(time.Until(end)):
			_ = k.cmd.Process.Signal(syscall.SIGKILL)
			<-k.exited
			p.tb.Errorf("fleet process did not exit within 2m of its stdin's end: killed")
		}
	}
}
