package scale

import (
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/shoal-project/shoal/internal/testcluster"
	api "github.com/shoal-project/shoal/proto"
)

// swarm is the cluster the scenario drives: three managers in this
// process (inProc, testcluster.Cluster) or each in a process of its own
// (procSwarm, testcluster.ProcCluster). The scenario writes through the
// Control API and reads the managers' state through these methods only.
type swarm interface {
	// Control is a Control API client that survives a manager's kill.
	Control() api.ControlClient
	// managers is each manager's state now.
	managers() []managerState
	// controlVia is a Control API client connected to the named manager.
	controlVia(name string) api.ControlClient
	counts(q testcluster.TaskQuery) (testcluster.TaskCounts, error)
	running(serviceIDs []string) (map[string]string, error)
	notReady(ids []string) (int, error)
	// killLeader finds the leader, calls killing, crashes it and returns
	// its name and how to start it again.
	killLeader(killing func()) (name string, restart func())
	// addFleet joins n simulated nodes, in a process of their own when fp
	// is asked for.
	addFleet(n int, fleet fleetMode) (testcluster.SimFleet, *testcluster.FleetProcess)
	waitNodesReady(f testcluster.SimFleet)
	crashed() error
	// goroutines writes each manager's goroutine dump to dir as
	// <name>-<tag>.goroutines.txt (managers in processes only).
	goroutines(dir, tag string) error
	// separate says whether the managers have processes of their own.
	separate() bool
}

// managerState is one manager as the harness sees it.
type managerState struct {
	name    string
	addrs   []string // the addresses nodes reach it at
	running bool
	leading bool
	applied uint64
	// markedDown counts the nodes its dispatchers marked down (since its
	// process started).
	markedDown uint64
	// For managers in processes of their own: CPU over all the manager's
	// processes, and the running one's RSS and Go heap (live and unswept
	// objects).
	cpu  time.Duration
	rss  uint64
	heap uint64
}

// inProc is a testcluster.Cluster: every manager in this process.
type inProc struct{ c *testcluster.Cluster }

func (s inProc) Control() api.ControlClient { return s.c.Control() }
func (s inProc) separate() bool             { return false }
func (s inProc) crashed() error             { return s.c.Crashed() }
func (s inProc) goroutines(string, string) error {
	return nil // one process: the test's own dump on a timeout shows it
}

func (s inProc) managers() []managerState {
	var out []managerState
	for _, m := range s.c.Managers() {
		st := managerState{name: m.Name, addrs: []string{m.Addr, m.TCPAddr}}
		if mgr := m.Manager(); mgr != nil {
			st.running, st.leading, st.applied = true, mgr.Leading(), mgr.Raft().AppliedIndex()
			st.markedDown = mgr.NodesMarkedDown()
		}
		out = append(out, st)
	}
	return out
}

func (s inProc) controlVia(name string) api.ControlClient {
	return s.c.ControlVia(named(s.c.Managers(), name, func(m *testcluster.Manager) string { return m.Name }))
}

// named is the manager of ms called name (the scenario knows only the
// names the swarm gave it).
func named[M any](ms []M, name string, nameOf func(M) string) M {
	for _, m := range ms {
		if nameOf(m) == name {
			return m
		}
	}
	panic("no manager " + name)
}

func (s inProc) counts(q testcluster.TaskQuery) (testcluster.TaskCounts, error) {
	return s.c.CountTasks(q), nil
}

func (s inProc) running(ids []string) (map[string]string, error) { return s.c.RunningTasks(ids), nil }
func (s inProc) notReady(ids []string) (int, error)              { return s.c.NotReady(ids), nil }

func (s inProc) killLeader(killing func()) (string, func()) {
	m := s.c.Leader()
	killing()
	m.Stop()
	return m.Name, m.Start
}

func (s inProc) addFleet(n int, fleet fleetMode) (testcluster.SimFleet, *testcluster.FleetProcess) {
	if fleet.process {
		fp := s.c.AddSimNodesProcess(n, testcluster.FleetProcessOptions{Nice: fleet.nice, ReconnectSpread: fleet.spread})
		return fp, fp
	}
	return s.c.AddSimNodes(n), nil
}

func (s inProc) waitNodesReady(f testcluster.SimFleet) { s.c.WaitNodesReady(f, forever) }

// procSwarm is a testcluster.ProcCluster: each manager in a process of
// its own; the fleet always has one too.
type procSwarm struct{ c *testcluster.ProcCluster }

func (s procSwarm) Control() api.ControlClient { return s.c.Control() }
func (s procSwarm) separate() bool             { return true }
func (s procSwarm) crashed() error             { return s.c.Crashed() }

func (s procSwarm) goroutines(dir, tag string) error {
	var errs []error
	for _, m := range s.c.Managers() {
		b, err := m.Goroutines()
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, m.Name+"-"+tag+".goroutines.txt"), b, 0o644)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (s procSwarm) managers() []managerState {
	var out []managerState
	for _, m := range s.c.Managers() {
		st := managerState{name: m.Name, addrs: []string{m.Addr}}
		st.cpu, st.rss = m.Usage()
		if ps, err := m.Status(); err == nil {
			st.running, st.leading, st.applied, st.heap = true, ps.Leading, ps.Applied, ps.Heap
			st.markedDown = ps.MarkedDown
		}
		out = append(out, st)
	}
	return out
}

func (s procSwarm) controlVia(name string) api.ControlClient {
	return s.c.ControlVia(named(s.c.Managers(), name, func(m *testcluster.ProcManager) string { return m.Name }))
}

func (s procSwarm) counts(q testcluster.TaskQuery) (testcluster.TaskCounts, error) {
	return s.c.CountTasks(q)
}

func (s procSwarm) running(ids []string) (map[string]string, error) { return s.c.RunningTasks(ids) }
func (s procSwarm) notReady(ids []string) (int, error)              { return s.c.NotReady(ids) }

func (s procSwarm) killLeader(killing func()) (string, func()) {
	m := s.c.Leader()
	killing()
	m.Kill()
	return m.Name, m.Start
}

func (s procSwarm) addFleet(n int, fleet fleetMode) (testcluster.SimFleet, *testcluster.FleetProcess) {
	fp := s.c.AddSimNodesProcess(n, testcluster.FleetProcessOptions{Nice: fleet.nice, ReconnectSpread: fleet.spread})
	return fp, fp
}

func (s procSwarm) waitNodesReady(f testcluster.SimFleet) { s.c.WaitNodesReady(f) }
