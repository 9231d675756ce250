package scheduler

import (
	"fmt"
	"math/rand/v2"
	"testing"

	api "github.com/shoal-project/shoal/proto"
)

// TestInvariants schedules random groups on random clusters, in several
// calls, and checks what must hold whatever the input: no node over its
// resources, its max replicas or a host port; the view's incremental
// accounting equal to one rebuilt from scratch; and tasks left pending only
// when the group's nodes are full.
func TestInvariants(t *testing.T) {
	for seed := range uint64(30) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			var nodes []*api.Node
			for i := range 5 + rng.IntN(30) {
				opts := []nodeOpt{
					resources(int64(1+rng.IntN(8))*1e9, int64(1+rng.IntN(16))*gib),
					labels("zone", fmt.Sprint("z", rng.IntN(3))),
				}
				switch rng.IntN(10) {
				case 0:
					opts = append(opts, down)
				case 1:
					opts = append(opts, drained)
				}
				nodes = append(nodes, testNode(fmt.Sprintf("n%02d", i), opts...))
			}
			v := newTestView(nodes...)
			var placed []*api.Task
			maxPer := map[string]uint64{}
			for call := range 4 {
				var pending []*api.Task
				for s := range 1 + rng.IntN(5) {
					svc := fmt.Sprintf("c%d-s%d", call, s)
					opts := []taskOpt{reserve(int64(rng.IntN(3))*5e8, int64(rng.IntN(3))*gib/2)}
					if rng.IntN(3) == 0 {
						m := uint64(1 + rng.IntN(3))
						maxPer[svc] = m
						opts = append(opts, maxReplicas(m))
					}
					if rng.IntN(3) == 0 {
						opts = append(opts, prefs("node.labels.zone"))
					}
					if rng.IntN(4) == 0 {
						opts = append(opts, hostPortOpt(uint32(8000+rng.IntN(3))))
					}
					pending = append(pending, testTasks(svc, 1+rng.IntN(40), opts...)...)
				}
				p := v.Schedule(pending, t0)
				t.Logf("call %d: %d placed, %d pending", call, len(p.Assigned), len(p.Unplaced))
				if len(p.Assigned)+len(p.Unplaced) != len(pending) {
					t.Fatalf("plan covers %d+%d of %d tasks", len(p.Assigned), len(p.Unplaced), len(pending))
				}
				for _, a := range p.Assigned {
					a.Task.NodeId = a.NodeID
					a.Task.Status.State = api.TaskState_ASSIGNED
					v.UpsertTask(a.Task) // the commit's event: a no-op
					placed = append(placed, a.Task)
				}
				for _, u := range p.Unplaced {
					if u.Reason == "" {
						t.Fatalf("%s unplaced without a reason", u.TaskID)
					}
					if n := roomFor(v, nodes, u.Task, maxPer[u.Task.ServiceId]); n != "" {
						t.Fatalf("%s left pending (%s) though %s has room", u.TaskID, u.Reason, n)
					}
				}
			}

			// Rebuild from scratch and compare.
			fresh := newTestView(nodes...)
			for _, task := range placed {
				fresh.UpsertTask(task)
			}
			ports := map[string]map[hostPort]int{}
			perSvc := map[[2]string]uint64{}
			for _, task := range placed {
				for _, hp := range hostPorts(task) {
					if ports[task.NodeId] == nil {
						ports[task.NodeId] = map[hostPort]int{}
					}
					if ports[task.NodeId][hp]++; ports[task.NodeId][hp] > 1 {
						t.Fatalf("host port %v used twice on %s", hp, task.NodeId)
					}
				}
				perSvc[[2]string{task.ServiceId, task.NodeId}]++
			}
			for k, c := range perSvc {
				if m := maxPer[k[0]]; m > 0 && c > m {
					t.Fatalf("%d tasks of %s on %s, max %d", c, k[0], k[1], m)
				}
			}
			for _, n := range nodes {
				got, _ := v.Usage(n.Id)
				want, _ := fresh.Usage(n.Id)
				if got != want {
					t.Fatalf("%s: incremental usage %+v, rebuilt %+v", n.Id, got, want)
				}
				r := n.Description.Resources
				if got.NanoCPUs > r.NanoCpus || got.MemoryBytes > r.MemoryBytes {
					t.Fatalf("%s over capacity: %+v of %v", n.Id, got, r)
				}
				if got.Tasks > 0 && (n.Status.State != api.NodeStatus_READY || n.Spec.Availability != api.Availability_ACTIVE) {
					t.Fatalf("%s got tasks while not ready or active", n.Id)
				}
				if len(v.nodes[n.Id].ports) != len(ports[n.Id]) {
					t.Fatalf("%s: ports %v, want %v", n.Id, v.nodes[n.Id].ports, ports[n.Id])
				}
			}
			if len(v.services) != len(fresh.services) {
				t.Fatalf("services indexed: %d, rebuilt %d", len(v.services), len(fresh.services))
			}
			for s, m := range fresh.services {
				for n, c := range m {
					if v.services[s][v.nodes[n.id]] != c {
						t.Fatalf("service %s on %s: %d, rebuilt %d", s, n.id, v.services[s][v.nodes[n.id]], c)
					}
				}
			}
			// Everything released leaves the view empty.
			for _, task := range placed {
				v.RemoveTask(task.Id)
			}
			if _, tasks := v.Size(); tasks != 0 || len(v.services) != 0 {
				t.Fatalf("after removing all: %d tasks, %d services", tasks, len(v.services))
			}
			for _, n := range v.live {
				if n.tasks != 0 || n.resCPU != 0 || n.resMem != 0 || len(n.ports) != 0 {
					t.Fatalf("%s keeps %+v", n.id, n)
				}
			}
		})
	}
}

// roomFor names a node that could take task now, or returns "".
func roomFor(v *View, nodes []*api.Node, task *api.Task, maxPer uint64) string {
	r := task.Spec.Resources.Reservations
	for _, n := range nodes {
		if n.Status.State != api.NodeStatus_READY || n.Spec.Availability != api.Availability_ACTIVE {
			continue
		}
		u, _ := v.Usage(n.Id)
		res := n.Description.Resources
		if u.NanoCPUs+r.NanoCpus > res.NanoCpus || u.MemoryBytes+r.MemoryBytes > res.MemoryBytes {
			continue
		}
		if maxPer > 0 && uint64(v.ServiceTasks(task.ServiceId, n.Id)) >= maxPer {
			continue
		}
		taken := false
		for _, hp := range hostPorts(task) {
			taken = taken || v.nodes[n.Id].ports[hp] > 0
		}
		if !taken {
			return n.Id
		}
	}
	return ""
}
