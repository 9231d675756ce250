package scale

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/shoal-project/shoal/manager/dispatcher"
	api "github.com/shoal-project/shoal/proto"
)

// Phases of the scenario, in the order they run.
var phaseOrder = []string{"create", "failover", "update", "drain", "remove"}

// defaultPhases run when SHOAL_SCALE_PHASES is empty.
const defaultPhases = "create,update,drain,remove"

// parsePhases reads a comma-separated phase list (SHOAL_SCALE_PHASES):
// names from phaseOrder, run in that order whatever the list's order;
// every phase after create needs the tasks, so create always runs.
func parsePhases(v string) (map[string]bool, error) {
	if strings.TrimSpace(v) == "" {
		v = defaultPhases
	}
	known := map[string]bool{}
	for _, p := range phaseOrder {
		known[p] = true
	}
	out := map[string]bool{"create": true}
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if !known[p] {
			return nil, fmt.Errorf("unknown phase %q: use a comma-separated list of %s", p, strings.Join(phaseOrder, ", "))
		}
		out[p] = true
	}
	return out, nil
}

// failover kills the leader of a steady swarm SHOAL_SCALE_STEADY_KILLS
// times (default 5), each once every manager has caught up, and times how
// long until a surviving manager accepts a write (killLeader: from the
// kill's start). Issue 13 asks for <= 2 s at the p99 of 5 kills with
// 1,000,000 tasks, and that nothing running is rescheduled: after the
// last kill it waits until every node has a session again, at most as
// long as the dispatcher keeps silent nodes from being marked down (its
// LeaderGrace of 6 heartbeat periods, then MassDownHold, plus two
// periods), then one period more, and fails the run if any task that ran
// before the kills was replaced, stopped or moved, or any node is not
// READY.
func (s *scenario) failover(kills int) {
	running := s.runningTasks()
	if len(running) != s.tasks {
		s.t.Fatalf("failover: %d tasks running before the kills, want %d", len(running), s.tasks)
	}
	stop := s.begin("failover")
	var took []time.Duration
	probes := 0
	last := s.f.Stats()
	for k := 0; k < kills; k++ {
		s.waitCaughtUp()
		if k > 0 {
			now := s.f.Stats()
			s.t.Logf("failover: since kill %d, sessions not opened, by manager: %v; TLS handshakes %d (resumed %d), failed %d",
				k, s.byManager(countsSince(now.OpenFailures, last.OpenFailures)),
				now.Handshakes-last.Handshakes, now.HandshakesResumed-last.HandshakesResumed, now.HandshakesFailed-last.HandshakesFailed)
			last = now
		}
		d, p := s.killLeader()
		took = append(took, d)
		probes += p
	}
	stop()
	// Every node must get a session back before the dispatcher's hold
	// runs out (LeaderGrace, then up to MassDownHold for a mass silence),
	// or it is marked down; wait for that, then a period more, so that a
	// node marked down at the hold's end is counted.
	period := api.DefaultHeartbeatPeriod
	within := 6*period + dispatcher.DefaultMassDownHold + 2*period
	began := time.Now()
	for s.f.Stats().LiveSessions < int64(s.nodes) && time.Since(began) < within {
		time.Sleep(time.Second)
	}
	st := s.f.Stats()
	s.t.Logf("failover: %d of %d nodes had a session again %v after the last kill's write; waiting a period (%v) before counting rescheduled tasks; the fleet's connections made %d, closed to stay within its file limit %d; TLS handshakes since the start %d (resumed %d), failed %d; sessions not opened, by manager: %v; its sessions ended so far, by cause: %v",
		st.LiveSessions, s.nodes, time.Since(began).Round(time.Second), period, st.Dials, st.ConnsClosed, st.Handshakes, st.HandshakesResumed, st.HandshakesFailed, s.byManager(st.OpenFailures), st.Ends)
	time.Sleep(period)
	s.waitCaughtUp()
	after := s.runningTasks()
	var moved []string
	for id, node := range running {
		if after[id] != node {
			moved = append(moved, id)
		}
	}
	sort.Strings(moved)
	notReady := s.notReady()
	s.r.end(0, fmt.Sprintf("leader killed %d times in a steady swarm; a new leader accepted a write after %s (%d probes); tasks running before and not on the same node after: %d; nodes not READY: %d",
		kills, failoverSummary(took), probes, len(moved), notReady))
	if len(moved) > 0 || notReady > 0 || len(after) != len(running) {
		s.t.Fatalf("failover rescheduled work: %d of %d tasks moved or stopped (first: %v), %d running now, %d nodes not READY",
			len(moved), len(running), moved[:min(len(moved), 5)], len(after), notReady)
	}
}

// countsSince is now's counts less before's.
func countsSince(now, before map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range now {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// byManager names the managers of counts kept by address.
func (s *scenario) byManager(counts map[string]int) map[string]int {
	names := map[string]string{}
	for _, m := range s.c.managers() {
		for _, a := range m.addrs {
			if a != "" {
				names[a] = m.name
			}
		}
	}
	out := map[string]int{}
	for a, n := range counts {
		if name, ok := names[a]; ok {
			a = name
		}
		out[a] += n
	}
	return out
}

// runningTasks maps each task desired and observed RUNNING to its node.
func (s *scenario) runningTasks() map[string]string {
	out, err := s.c.running(s.svcIDs)
	if err != nil {
		s.t.Fatalf("reading the running tasks: %v", err)
	}
	return out
}
