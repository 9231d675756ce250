package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/test/images"
	"github.com/shoal-project/shoal/test/lab"
)

// replicas is the service the worker tests run: 4 whoami replicas.
const replicas = 4

// tasks lists the service's tasks as the manager h stores them.
func (s *swarm) tasks(h *lab.Host, service string) ([]*api.Task, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	svc, err := s.control(h).GetService(ctx, &api.GetServiceRequest{ServiceId: service})
	if err != nil {
		return nil, err
	}
	resp, err := s.control(h).ListTasks(ctx, &api.ListTasksRequest{Filters: &api.ListFilters{ServiceIds: []string{svc.GetService().GetId()}}})
	if err != nil {
		return nil, err
	}
	return resp.GetTasks(), nil
}

// nodeIDs maps hostnames to node IDs (of the nodes `node ls` lists Ready
// or not; a hostname that joined twice keeps its latest ID).
func (s *swarm) nodeIDs(h *lab.Host) map[string]string {
	s.t.Helper()
	rows, err := s.nodeLs(h)
	if err != nil {
		s.t.Fatal(err)
	}
	m := map[string]string{}
	for _, r := range rows {
		m[r.Hostname] = r.ID
	}
	return m
}

// placement checks that every slot 1..n has exactly one task in state
// RUNNING, desired RUNNING and not on the node exclude, and returns the
// running task IDs by node ID. Tasks on the node down, which cannot report,
// may still show RUNNING (as Docker shows them) but must no longer be
// desired RUNNING; with down empty every RUNNING task counts.
func placement(tasks []*api.Task, n int, exclude, down string) (map[string][]string, error) {
	bySlot := map[uint64][]*api.Task{}
	onNode := map[string][]string{}
	for _, t := range tasks {
		if t.GetStatus().GetState() != api.TaskState_RUNNING {
			continue
		}
		if down != "" && t.GetNodeId() == down {
			if t.GetDesiredState() == api.TaskState_RUNNING {
				return nil, fmt.Errorf("task %s (slot %d) on the down node is still desired RUNNING", t.GetId(), t.GetSlot())
			}
			continue
		}
		bySlot[t.GetSlot()] = append(bySlot[t.GetSlot()], t)
		onNode[t.GetNodeId()] = append(onNode[t.GetNodeId()], t.GetId())
	}
	for slot := uint64(1); slot <= uint64(n); slot++ {
		ts := bySlot[slot]
		if len(ts) != 1 {
			return nil, fmt.Errorf("slot %d has %d RUNNING tasks", slot, len(ts))
		}
		if ts[0].GetNodeId() == exclude {
			return nil, fmt.Errorf("slot %d runs on the excluded node %s", slot, exclude)
		}
		if ts[0].GetDesiredState() != api.TaskState_RUNNING {
			return nil, fmt.Errorf("slot %d: the RUNNING task %s is desired %v", slot, ts[0].GetId(), ts[0].GetDesiredState())
		}
	}
	if len(bySlot) != n {
		return nil, fmt.Errorf("RUNNING tasks in %d slots, want %d", len(bySlot), n)
	}
	return onNode, nil
}

// containersMatch checks that containerd runs, on every host, exactly the
// tasks the cluster has RUNNING there.
func (s *swarm) containersMatch(onNode map[string][]string, ids map[string]string, hosts []*lab.Host) error {
	for _, h := range hosts {
		got, err := runningContainers(h)
		if err != nil {
			return err
		}
		want := slices.Clone(onNode[ids[h.Name]])
		slices.Sort(want)
		if !slices.Equal(got, want) {
			return fmt.Errorf("%s runs containers %v, the cluster has %v RUNNING there", h.Name, got, want)
		}
	}
	return nil
}

// startWeb creates the service and waits until its 4 replicas run, in the
// store and in containerd. It returns the hostname -> node ID map and the
// running task IDs by node ID.
func (s *swarm) startWeb() (map[string]string, map[string][]string) {
	s.t.Helper()
	h1 := s.managers[0]
	s.sh(h1, "service", "create", "-d", "--name", "web", "--replicas", fmt.Sprint(replicas), s.image(images.Whoami))
	ids := s.nodeIDs(h1)
	var onNode map[string][]string
	lab.WaitFor(s.t, 90*time.Second, func() error {
		tasks, err := s.tasks(h1, "web")
		if err != nil {
			return err
		}
		if onNode, err = placement(tasks, replicas, "", ""); err != nil {
			return err
		}
		return s.containersMatch(onNode, ids, s.l.Hosts)
	})
	return ids, onNode
}

// victim is a worker that runs at least one replica.
func (s *swarm) victim(ids map[string]string, onNode map[string][]string) *lab.Host {
	s.t.Helper()
	for _, w := range s.workers {
		if len(onNode[ids[w.Name]]) > 0 {
			return w
		}
	}
	s.t.Fatalf("no worker runs a replica: %v", onNode)
	return nil
}

// TestWorkerKill: a worker running replicas is killed with SIGKILL, 3
// rounds (restarted each round). Every shoald runs with --heartbeat-period
// 1s so that the test is quick: the node is Down within 3 heartbeats + 1 s,
// its replicas are RUNNING on the other nodes, and once the worker is back no
// slot has two RUNNING tasks and the worker's containers drop to what the
// cluster assigns it. It measures kill -> Down and kill -> all replicas
// RUNNING again.
func TestWorkerKill(t *testing.T) {
	const heartbeat = time.Second
	s := newSwarm(t, spec{managers: 1, workers: 2, registry: true, args: []string{"--heartbeat-period", heartbeat.String()}})
	h1 := s.managers[0]
	ids, onNode := s.startWeb()
	var toDown, toRunning []time.Duration
	var onVictim []int
	for round := 1; round <= 3; round++ {
		victim := s.victim(ids, onNode)
		vid := ids[victim.Name]
		killed := time.Now()
		if err := victim.Kill(); err != nil {
			t.Fatal(err)
		}
		var down time.Duration
		lab.WaitFor(t, 30*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			resp, err := s.control(h1).GetNode(ctx, &api.GetNodeRequest{NodeId: vid})
			if err != nil {
				return err
			}
			if st := resp.GetNode().GetStatus().GetState(); st != api.NodeStatus_DOWN {
				return fmt.Errorf("%s is %v", victim.Name, st)
			}
			down = time.Since(killed)
			return nil
		})
		if limit := 3*heartbeat + time.Second; down > limit {
			t.Errorf("round %d: %s marked Down %v after the kill, want within %v", round, victim.Name, down.Round(time.Millisecond), limit)
		}
		if row := s.sh(h1, "node", "ls", "--filter", "name="+victim.Name, "--format", "{{.Status}}"); !strings.Contains(row, "Down") {
			t.Errorf("round %d: node ls shows %s as %q, want Down", round, victim.Name, row)
		}
		var recovered time.Duration
		live := s.l.Others(victim)
		lab.WaitFor(t, 60*time.Second, func() error {
			tasks, err := s.tasks(h1, "web")
			if err != nil {
				return err
			}
			on, err := placement(tasks, replicas, vid, vid)
			if err != nil {
				return err
			}
			if err := s.containersMatch(on, ids, live); err != nil {
				return err
			}
			recovered = time.Since(killed)
			return nil
		})
		left, err := runningContainers(victim)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed %s (%d of %d replicas; %d of its containers outlive it): Down after %v, all replicas RUNNING elsewhere after %v",
			round, victim.Name, len(onNode[vid]), replicas, len(left), down.Round(time.Millisecond), recovered.Round(time.Millisecond))
		toDown, toRunning, onVictim = append(toDown, down), append(toRunning, recovered), append(onVictim, len(onNode[vid]))

		s.start(victim)
		restarted := time.Now()
		lab.WaitFor(t, 60*time.Second, func() error {
			rows, err := s.nodeLs(h1)
			if err != nil {
				return err
			}
			if err := s.checkHealthy(rows); err != nil {
				return err
			}
			tasks, err := s.tasks(h1, "web")
			if err != nil {
				return err
			}
			on, err := placement(tasks, replicas, "", "")
			if err != nil {
				return err
			}
			if err := s.containersMatch(on, ids, s.l.Hosts); err != nil {
				return err
			}
			onNode = on
			return nil
		})
		t.Logf("round %d: %s back after %v: one RUNNING task per slot, its containers match its assignment (%d)",
			round, victim.Name, time.Since(restarted).Round(time.Millisecond), len(onNode[vid]))
	}
	benchFile(t, fmt.Sprintf("worker kill -9, 1 manager + 2 workers, heartbeat %v, %d replicas (%v on the victim), %d kills\n"+
		"kill -> node Down: p50 %v max %v (all %v)\nkill -> all replicas RUNNING again: p50 %v max %v (all %v)\n",
		heartbeat, replicas, onVictim, len(toDown),
		percentile(toDown, 50).Round(time.Millisecond), percentile(toDown, 100).Round(time.Millisecond), rounded(toDown),
		percentile(toRunning, 50).Round(time.Millisecond), percentile(toRunning, 100).Round(time.Millisecond), rounded(toRunning)))
}

// TestWorkerDrain: draining a worker moves its tasks off it (RUNNING
// elsewhere, no container left on it in containerd), and `node ps` on it
// shows their history as Shutdown rows.
func TestWorkerDrain(t *testing.T) {
	s := newSwarm(t, spec{managers: 1, workers: 2, registry: true})
	h1 := s.managers[0]
	ids, onNode := s.startWeb()
	victim := s.victim(ids, onNode)
	vid := ids[victim.Name]
	moved := onNode[vid]
	s.sh(h1, "node", "update", "--availability", "drain", victim.Name)
	drained := time.Now()
	lab.WaitFor(t, 60*time.Second, func() error {
		tasks, err := s.tasks(h1, "web")
		if err != nil {
			return err
		}
		on, err := placement(tasks, replicas, vid, "")
		if err != nil {
			return err
		}
		return s.containersMatch(on, ids, s.l.Hosts) // the drained node: none
	})
	t.Logf("%d tasks moved off %s in %v", len(moved), victim.Name, time.Since(drained).Round(time.Millisecond))
	if row := s.sh(h1, "node", "ls", "--filter", "name="+victim.Name, "--format", "{{.Availability}}"); strings.TrimSpace(row) != "Drain" {
		t.Errorf("node ls shows %s's availability as %q, want Drain", victim.Name, row)
	}
	lab.WaitFor(t, 20*time.Second, func() error {
		out, err := try(h1, 10*time.Second, "node", "ps", "--no-trunc", "--format", "{{.ID}}|{{.Name}}|{{.DesiredState}}|{{.CurrentState}}", victim.Name)
		if err != nil {
			return err
		}
		rows := map[string][]string{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Split(line, "|"); len(f) == 4 {
				rows[f[0]] = f
			}
		}
		for _, id := range moved {
			r, ok := rows[id]
			if !ok {
				return fmt.Errorf("node ps %s does not list the drained task %s:\n%s", victim.Name, id, out)
			}
			if r[2] != "Shutdown" || !strings.HasPrefix(r[3], "Shutdown") {
				return fmt.Errorf("node ps %s shows task %s as desired %q, current %q; want Shutdown, Shutdown:\n%s", victim.Name, id, r[2], r[3], out)
			}
		}
		t.Logf("node ps %s:\n%s", victim.Name, out)
		return nil
	})
}
