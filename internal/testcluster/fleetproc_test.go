package testcluster

import (
	"fmt"
	"os"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

func TestMain(m *testing.M) {
	RunFleetProcessIfAsked()
	os.Exit(m.Run())
}

// A fleet in two child processes joins over the managers' loopback ports,
// runs a service's tasks, follows a leader kill to the other managers and
// back to the restarted one's same port, and exits when closed; its
// counters are the two children's summed.
func TestFleetProcess(t *testing.T) {
	c := New(t, Options{Managers: 3, NoManagerAgents: true, WallClock: true, Loopback: true, WallLimit: time.Minute})
	f := c.AddSimNodesProcess(30, FleetProcessOptions{Nice: 5, Processes: 2})
	if f.Processes() != 2 {
		t.Fatalf("%d fleet processes, want 2", f.Processes())
	}
	c.WaitNodesReady(f, time.Minute)
	if got := len(f.NodeIDs()); got != 30 {
		t.Fatalf("%d node IDs, want 30", got)
	}
	running := func(want int) func() error {
		return func() error {
			if n := len(c.Running("web")); n != want {
				return fmt.Errorf("%d of %d tasks RUNNING", n, want)
			}
			return nil
		}
	}
	c.CreateService(replicated("web", "img:1", 60))
	c.WaitFor("60 tasks RUNNING", time.Minute, running(60))

	killed := c.KillLeader()
	port := killed.TCPAddr
	c.UpdateService("web", func(s *api.ServiceSpec) { s.GetReplicated().Replicas = 90 })
	c.WaitFor("90 tasks RUNNING without the old leader", time.Minute, running(90))
	killed.Start()
	if killed.TCPAddr != port {
		t.Fatalf("restarted %s listens on %s, was %s", killed.Name, killed.TCPAddr, port)
	}
	c.WaitNodesReady(f, time.Minute)

	cpu, rss := f.Usage()
	if cpu <= 0 || rss == 0 {
		t.Fatalf("fleet process usage: cpu %v, rss %d", cpu, rss)
	}
	f.Close()
	// The counters after the nodes closed (no live session). A report
	// whose session ended in flight may have been recorded without the
	// node counting it: ReportedRunning may fall short of 90.
	st := f.Stats()
	if st.Nodes != 30 || st.ReportedRunning == 0 || st.LiveSessions != 0 {
		t.Fatalf("final stats: %+v", st)
	}
	// Sessions reopened after the kill; connections were kept: a node
	// dials each manager at most once, as the real agent.
	if st.SessionsOpened <= 30 || st.Dials > 30*3 {
		t.Fatalf("%d sessions opened on %d connections made: want sessions reopened, at most one connection per node and manager", st.SessionsOpened, st.Dials)
	}
	if _, rss := f.Usage(); rss != 0 {
		t.Fatalf("fleet process still resident after Close (%d bytes)", rss)
	}
}

// The fleet needs as many processes as keep a connection per node and
// manager within each one's budget.
func TestFleetProcesses(t *testing.T) {
	for _, c := range []struct{ n, managers, budget, want int }{
		{10000, 3, 18976, 2}, // this machine: a limit of 20,000 less the reserve
		{10000, 3, 1<<20 - 1024, 1},
		{6000, 3, 18000, 1},
		{6001, 3, 18000, 2},
		{30, 3, 0, 1}, // no limit
		{0, 3, 100, 1},
	} {
		if got := fleetProcesses(c.n, c.managers, c.budget); got != c.want {
			t.Errorf("fleetProcesses(%d nodes, %d managers, budget %d) = %d, want %d", c.n, c.managers, c.budget, got, c.want)
		}
	}
}
