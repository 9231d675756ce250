package scheduler

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

const gib = int64(1) << 30

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type nodeOpt func(*api.Node)

// testNode is a ready, active linux/amd64 worker with 4 CPUs and 8 GiB.
func testNode(id string, opts ...nodeOpt) *api.Node {
	n := &api.Node{
		Id:   id,
		Spec: &api.NodeSpec{Annotations: &api.Annotations{Name: id}, Availability: api.Availability_ACTIVE},
		Description: &api.NodeDescription{
			Hostname:  id,
			Platform:  &api.Platform{Os: "linux", Architecture: "amd64"},
			Resources: &api.Resources{NanoCpus: 4e9, MemoryBytes: 8 * gib},
			Engine:    &api.EngineDescription{},
		},
		Status: &api.NodeStatus{State: api.NodeStatus_READY},
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

func labels(kv ...string) nodeOpt {
	return func(n *api.Node) {
		if n.Spec.Annotations.Labels == nil {
			n.Spec.Annotations.Labels = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			n.Spec.Annotations.Labels[kv[i]] = kv[i+1]
		}
	}
}

func engineLabels(kv ...string) nodeOpt {
	return func(n *api.Node) {
		n.Description.Engine.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			n.Description.Engine.Labels[kv[i]] = kv[i+1]
		}
	}
}

func manager(n *api.Node) { n.Role = api.NodeRole_MANAGER }
func down(n *api.Node)    { n.Status.State = api.NodeStatus_DOWN }
func drained(n *api.Node) { n.Spec.Availability = api.Availability_DRAIN }
func paused(n *api.Node)  { n.Spec.Availability = api.Availability_PAUSE }

func resources(cpu, mem int64) nodeOpt {
	return func(n *api.Node) { n.Description.Resources = &api.Resources{NanoCpus: cpu, MemoryBytes: mem} }
}

func platform(os, arch string) nodeOpt {
	return func(n *api.Node) { n.Description.Platform = &api.Platform{Os: os, Architecture: arch} }
}

type taskOpt func(*api.Task)

// testTask is a PENDING, unassigned task of service at spec version 1.
func testTask(id, service string, opts ...taskOpt) *api.Task {
	t := &api.Task{
		Id: id, ServiceId: service, SpecVersion: 1,
		Spec:         &api.TaskSpec{Resources: &api.ResourceRequirements{}, Placement: &api.Placement{}},
		Status:       &api.TaskStatus{State: api.TaskState_PENDING},
		DesiredState: api.TaskState_RUNNING,
	}
	for _, o := range opts {
		o(t)
	}
	return t
}

// testTasks makes n tasks of service named service.1 … service.n.
func testTasks(service string, n int, opts ...taskOpt) []*api.Task {
	out := make([]*api.Task, n)
	for i := range out {
		out[i] = testTask(fmt.Sprintf("%s.%d", service, i+1), service, opts...)
	}
	return out
}

func reserve(cpu, mem int64) taskOpt {
	return func(t *api.Task) { t.Spec.Resources.Reservations = &api.Resources{NanoCpus: cpu, MemoryBytes: mem} }
}

func constraints(cs ...string) taskOpt {
	return func(t *api.Task) { t.Spec.Placement.Constraints = cs }
}

func prefs(ds ...string) taskOpt {
	return func(t *api.Task) {
		for _, d := range ds {
			t.Spec.Placement.Preferences = append(t.Spec.Placement.Preferences, &api.PlacementPreference{SpreadDescriptor: d})
		}
	}
}

func maxReplicas(m uint64) taskOpt { return func(t *api.Task) { t.Spec.Placement.MaxReplicas = m } }

func version(v uint64) taskOpt { return func(t *api.Task) { t.SpecVersion = v } }

func hostPortOpt(port uint32) taskOpt {
	return func(t *api.Task) {
		t.Endpoint = &api.Endpoint{Ports: []*api.PortConfig{{
			Protocol: api.PortConfig_TCP, TargetPort: 80, PublishedPort: port, PublishMode: api.PortConfig_HOST,
		}}}
	}
}

// on pins a pending task to a node, as the global orchestrator does.
func on(nodeID string) taskOpt { return func(t *api.Task) { t.NodeId = nodeID } }

// runningOn makes the task one that runs on nodeID.
func runningOn(nodeID string) taskOpt {
	return func(t *api.Task) {
		t.NodeId = nodeID
		t.Status.State = api.TaskState_RUNNING
	}
}

func newTestView(nodes ...*api.Node) *View {
	v := NewView()
	for _, n := range nodes {
		v.UpsertNode(n)
	}
	return v
}

func nodesN(n int, opts ...nodeOpt) []*api.Node {
	out := make([]*api.Node, n)
	for i := range out {
		out[i] = testNode(fmt.Sprintf("n%02d", i+1), opts...)
	}
	return out
}

// perNode counts the plan's assignments by node.
func perNode(p Plan) map[string]int {
	m := map[string]int{}
	for _, a := range p.Assigned {
		m[a.NodeID]++
	}
	return m
}

// sortedCounts is the multiset of per-node counts, largest first, with
// zeros for the given nodes that got nothing.
func sortedCounts(m map[string]int, nodes []*api.Node) []int {
	var out []int
	for _, n := range nodes {
		out = append(out, m[n.Id])
	}
	slices.Sort(out)
	slices.Reverse(out)
	return out
}

func reasons(p Plan) map[string]int {
	m := map[string]int{}
	for _, u := range p.Unplaced {
		m[u.Reason]++
	}
	return m
}

func mustPlaceAll(t *testing.T, p Plan, want int) {
	t.Helper()
	if len(p.Assigned) != want || len(p.Unplaced) != 0 {
		t.Fatalf("placed %d (want %d), unplaced %v", len(p.Assigned), want, slices.Collect(maps.Keys(reasons(p))))
	}
}
