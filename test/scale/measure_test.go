package scale

import (
	"fmt"
	"os"
	"runtime/metrics"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testcluster"
)

// sample is the managers' counters at one moment. With the managers in
// this one process (and the fleet too, unless it has a process of its
// own), CPU and memory are the process's: the managers' together, not the
// leader's alone (a phase's CPU profile splits the CPU: cpuparts_test.go).
// With a process per manager, CPU, heap and RSS are the managers' sums,
// and managers holds each one's; this process is the harness alone. The
// fleet's own process is measured apart.
type sample struct {
	at      time.Time
	cpu     time.Duration // user + system time of the managers
	applied uint64        // highest applied raft index among running managers
	heap    uint64        // bytes of live and unswept heap objects
	stacks  uint64        // bytes of goroutine stacks (managers in this process)
	rss     uint64        // resident set size, bytes
	leader  string        // the manager that leads, "" if none

	managers []managerState // with a process per manager
	harness  time.Duration  // this process's CPU, then

	fleetCPU time.Duration // the fleet process's user + system time (0 without one)
	fleetRSS uint64        // and its resident set size
}

func take(c swarm, fp *testcluster.FleetProcess) sample {
	s := sample{at: time.Now()}
	if fp != nil {
		s.fleetCPU, s.fleetRSS = fp.Usage()
	}
	var self time.Duration
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	ms := c.managers()
	for _, m := range ms {
		if m.running {
			s.applied = max(s.applied, m.applied)
			if m.leading {
				s.leader = m.name
			}
		}
	}
	if c.separate() {
		s.managers, s.harness = ms, self
		for _, m := range ms {
			s.cpu += m.cpu
			s.heap += m.heap
			s.rss += m.rss
		}
		return s
	}
	s.cpu = self
	rt := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(rt)
	if rt[0].Value.Kind() == metrics.KindUint64 {
		s.heap = rt[0].Value.Uint64()
	}
	if rt[1].Value.Kind() == metrics.KindUint64 {
		s.stacks = rt[1].Value.Uint64()
	}
	s.rss = testcluster.RSS("self")
	return s
}

// phase is one line of the report.
type phase struct {
	name   string
	wall   time.Duration
	tasks  int // tasks that reached RUNNING (or were removed) in the phase
	from   sample
	to     sample
	detail string
	parts  cpuParts // the phase's CPU by part, nil without a profile
}

func (p phase) String() string {
	secs := p.wall.Seconds()
	rate := func(n float64) string {
		if secs <= 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.0f", n/secs)
	}
	cpu := p.to.cpu - p.from.cpu
	out := fmt.Sprintf("%-9s wall %9v  tasks %8d  tasks/s %7s  raft entries/s %6s  CPU %8v (%3.0f%% of one core)  heap %5d MiB  RSS %5d MiB  %s",
		p.name, p.wall.Round(time.Millisecond), p.tasks, rate(float64(p.tasks)), rate(float64(p.to.applied-p.from.applied)),
		cpu.Round(time.Millisecond), 100*cpu.Seconds()/max(secs, 1e-9), p.to.heap>>20, p.to.rss>>20, p.detail)
	if len(p.to.managers) > 0 {
		var parts []string
		for i, m := range p.to.managers {
			mcpu := m.cpu
			if i < len(p.from.managers) {
				mcpu -= p.from.managers[i].cpu
			}
			role := ""
			if m.name == p.to.leader {
				role = " (leader)"
			}
			parts = append(parts, fmt.Sprintf("%s%s CPU %v (%.0f%%), RSS %d MiB, heap %d MiB", m.name, role, mcpu.Round(time.Millisecond),
				100*mcpu.Seconds()/max(secs, 1e-9), m.rss>>20, m.heap>>20))
		}
		hcpu := p.to.harness - p.from.harness
		out += fmt.Sprintf("\n            managers: %s; the harness CPU %v", strings.Join(parts, "; "), hcpu.Round(time.Millisecond))
	}
	if p.to.fleetRSS > 0 {
		fcpu := p.to.fleetCPU - p.from.fleetCPU
		out += fmt.Sprintf("\n            fleet process: CPU %v (%.0f%% of one core), RSS %d MiB", fcpu.Round(time.Millisecond),
			100*fcpu.Seconds()/max(secs, 1e-9), p.to.fleetRSS>>20)
	}
	if p.parts != nil {
		out += "\n            " + p.parts.String(p.wall, p.to.leader)
	}
	return out
}

// report collects the phases and prints them at the end of the test,
// whatever its outcome.
type report struct {
	t      *testing.T
	c      swarm
	fleet  *testcluster.FleetProcess // nil while the fleet has no process of its own
	header string

	mu     sync.Mutex // phases and cur: the memory guard prints them too
	phases []phase
	cur    *phase
}

func newReport(t *testing.T, header string) *report {
	r := &report{t: t, header: header}
	t.Cleanup(func() { t.Log(r.text()) })
	return r
}

// text is the report so far.
func (r *report) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "scale report: %s\n", r.header)
	for _, p := range r.phases {
		fmt.Fprintf(&b, "  %s\n", p)
	}
	if r.cur != nil {
		in := time.Since(r.cur.from.at)
		fmt.Fprintf(&b, "  %-9s did not finish (%v in)\n", r.cur.name, in.Round(time.Millisecond))
		if r.cur.parts != nil { // its profile stopped in the test's cleanup
			fmt.Fprintf(&b, "            %s\n", r.cur.parts.String(in, ""))
		}
	}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(&b, "  load average at the end: %s", la)
	}
	return b.String()
}

// begin starts a phase.
func (r *report) begin(name string) {
	from := take(r.c, r.fleet)
	r.mu.Lock()
	r.cur = &phase{name: name, from: from}
	r.mu.Unlock()
}

// setParts records the current phase's CPU by part.
func (r *report) setParts(parts cpuParts) {
	r.mu.Lock()
	if r.cur != nil {
		r.cur.parts = parts
	}
	r.mu.Unlock()
}

// end closes the current phase.
func (r *report) end(tasks int, detail string) {
	to := take(r.c, r.fleet)
	r.mu.Lock()
	p := *r.cur
	p.to = to
	p.wall = p.to.at.Sub(p.from.at)
	p.tasks, p.detail = tasks, detail
	r.phases = append(r.phases, p)
	r.cur = nil
	r.mu.Unlock()
	r.t.Logf("%s", p)
}
