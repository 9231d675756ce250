package cluster

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestJoinFiveNodes: h1 inits, h2 and h3 join with the manager token, h4
// and h5 with the worker token (`swarm join-token manager|worker -q`). The
// default `node ls` table on every manager shows 5 Ready nodes, exactly one
// Leader and two Reachable in the MANAGER STATUS column, and that column
// blank for the workers; all managers agree on who leads.
func TestJoinFiveNodes(t *testing.T) {
	s := newSwarm(t, spec{managers: 3, workers: 2})
	for _, m := range s.managers {
		s.waitHealthy(m, 20*time.Second)
	}
	var leaders []string
	for _, m := range s.managers {
		table := s.sh(m, "node", "ls")
		rows, err := parseTable(table, "ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS", "ENGINE VERSION")
		if err != nil {
			t.Fatalf("node ls on %s: %v\n%s", m.Name, err, table)
		}
		if len(rows) != 5 {
			t.Fatalf("node ls on %s: %d rows, want 5:\n%s", m.Name, len(rows), table)
		}
		got := map[string]string{}
		leader := ""
		for _, r := range rows {
			host := r["HOSTNAME"]
			if r["STATUS"] != "Ready" || r["AVAILABILITY"] != "Active" {
				t.Errorf("node ls on %s: %s is %s/%s, want Ready/Active", m.Name, host, r["STATUS"], r["AVAILABILITY"])
			}
			got[host] = r["MANAGER STATUS"]
			if r["MANAGER STATUS"] == "Leader" {
				leader = host
			}
			if strings.HasSuffix(strings.TrimSpace(r["ID"]), "*") != (host == m.Name) {
				t.Errorf("node ls on %s: the self marker is on the wrong row: %q", m.Name, r["ID"])
			}
		}
		count := map[string]int{}
		for _, m := range s.managers {
			count[got[m.Name]]++
		}
		if count["Leader"] != 1 || count["Reachable"] != 2 {
			t.Errorf("node ls on %s: managers' MANAGER STATUS %v, want one Leader and two Reachable:\n%s", m.Name, got, table)
		}
		for _, w := range s.workers {
			if st, ok := got[w.Name]; !ok || st != "" {
				t.Errorf("node ls on %s: worker %s has MANAGER STATUS %q (present %v), want blank:\n%s", m.Name, w.Name, st, ok, table)
			}
		}
		leaders = append(leaders, leader)
		t.Logf("node ls on %s:\n%s", m.Name, table)
	}
	for _, l := range leaders[1:] {
		if l != leaders[0] {
			t.Errorf("managers disagree on the leader: %v", leaders)
		}
	}
	// The workers are not raft members.
	members, err := s.raftMembers(s.managers[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 3 {
		t.Errorf("raft has %d members, want the 3 managers: %v", len(members), members)
	}
	// A worker's control socket does not serve the Control API.
	if out, err := try(s.workers[0], 10*time.Second, "node", "ls"); err == nil {
		t.Errorf("node ls on worker %s succeeded:\n%s", s.workers[0].Name, out)
	}
}

// parseTable splits a tabwriter table into rows of column -> value, using
// the header's column offsets. The last column runs to the end of the line.
func parseTable(table string, cols ...string) ([]map[string]string, error) {
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	if len(lines) == 0 {
		return nil, fmt.Errorf("empty table")
	}
	head := lines[0]
	starts := make([]int, len(cols))
	from := 0
	for i, c := range cols {
		j := strings.Index(head[from:], c)
		if j < 0 {
			return nil, fmt.Errorf("no column %q in header %q", c, head)
		}
		starts[i] = from + j
		from = starts[i] + len(c)
	}
	var rows []map[string]string
	for _, line := range lines[1:] {
		r := map[string]string{}
		for i, c := range cols {
			a := min(starts[i], len(line))
			b := len(line)
			if i+1 < len(cols) {
				b = min(starts[i+1], len(line))
			}
			r[c] = strings.TrimSpace(line[a:b])
		}
		rows = append(rows, r)
	}
	return rows, nil
}
