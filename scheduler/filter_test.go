package scheduler

import (
	"testing"

	api "github.com/shoal-project/shoal/proto"
)

// TestFilters runs each filter on one node and checks its fit and its
// explanation for one and for three refused nodes.
func TestFilters(t *testing.T) {
	for _, tc := range []struct {
		name    string
		f       filter
		node    *api.Node
		setup   func(v *View) // tasks already on the node
		task    *api.Task
		svc     int // tasks of the service on the node
		applies bool
		fit     int
		explain [2]string // for 1 and 3 nodes
	}{
		{
			name: "ready", f: readyFilter{}, node: testNode("n", down), task: testTask("t", "s"),
			applies: true, fit: 0, explain: [2]string{"1 node not ready", "3 nodes not ready"},
		},
		{name: "ready ok", f: readyFilter{}, node: testNode("n"), task: testTask("t", "s"), applies: true, fit: unlimited},
		{
			name: "drained", f: availabilityFilter{}, node: testNode("n", drained), task: testTask("t", "s"), applies: true,
			explain: [2]string{"1 node not available for new tasks (paused or drained)", "3 nodes not available for new tasks (paused or drained)"},
		},
		{name: "paused", f: availabilityFilter{}, node: testNode("n", paused), task: testTask("t", "s"), applies: true},
		{name: "active", f: availabilityFilter{}, node: testNode("n"), task: testTask("t", "s"), applies: true, fit: unlimited},
		{
			name: "platform", f: &platformFilter{}, node: testNode("n", platform("linux", "arm64")), applies: true,
			task: testTask("t", "s", func(t *api.Task) {
				t.Spec.Placement.Platforms = []*api.Platform{{Os: "linux", Architecture: "amd64"}, {Os: "windows"}}
			}),
			explain: [2]string{"unsupported platform on 1 node", "unsupported platform on 3 nodes"},
		},
		{
			name: "platform aliases", f: &platformFilter{}, node: testNode("n", platform("Linux", "aarch64")), applies: true, fit: unlimited,
			task: testTask("t", "s", func(t *api.Task) { t.Spec.Placement.Platforms = []*api.Platform{{Os: "linux", Architecture: "arm64"}} }),
		},
		{
			name: "platform any arch", f: &platformFilter{}, node: testNode("n", platform("linux", "riscv64")), applies: true, fit: unlimited,
			task: testTask("t", "s", func(t *api.Task) { t.Spec.Placement.Platforms = []*api.Platform{{Os: "linux"}} }),
		},
		{name: "no platforms", f: &platformFilter{}, node: testNode("n"), task: testTask("t", "s")},
		{
			name: "constraints", f: &constraintFilter{}, node: testNode("n", labels("zone", "west")), applies: true,
			task:    testTask("t", "s", constraints("node.role==worker", "node.labels.zone==east")),
			explain: [2]string{"scheduling constraints not satisfied on 1 node", "scheduling constraints not satisfied on 3 nodes"},
		},
		{
			name: "constraints ok", f: &constraintFilter{}, node: testNode("n", labels("zone", "east")), applies: true, fit: unlimited,
			task: testTask("t", "s", constraints("node.role==worker", "node.labels.zone==east")),
		},
		{name: "no constraints", f: &constraintFilter{}, node: testNode("n"), task: testTask("t", "s")},
		{
			name: "memory", f: &resourceFilter{}, node: testNode("n"), applies: true, fit: 0,
			setup:   func(v *View) { v.UpsertTask(testTask("old", "other", reserve(0, 7*gib), runningOn("n"))) },
			task:    testTask("t", "s", reserve(0, 2*gib)),
			explain: [2]string{"insufficient memory on 1 node", "insufficient memory on 3 nodes"},
		},
		{
			name: "cpu", f: &resourceFilter{}, node: testNode("n"), applies: true, fit: 2,
			setup:   func(v *View) { v.UpsertTask(testTask("old", "other", reserve(2e9, 0), runningOn("n"))) },
			task:    testTask("t", "s", reserve(1e9, 0)),
			explain: [2]string{"insufficient CPU on 1 node", "insufficient CPU on 3 nodes"},
		},
		{
			name: "cpu and memory", f: &resourceFilter{}, node: testNode("n"), applies: true, fit: 4,
			task:    testTask("t", "s", reserve(5e8, 2*gib)),
			explain: [2]string{"insufficient resources on 1 node", "insufficient resources on 3 nodes"},
		},
		{
			name: "generic", f: &resourceFilter{}, applies: true, fit: 1,
			node: testNode("n", func(n *api.Node) {
				n.Description.Resources.Generic = []*api.GenericResource{{Kind: "gpu", Value: 3}}
			}),
			task: testTask("t", "s", func(t *api.Task) {
				t.Spec.Resources.Reservations = &api.Resources{Generic: []*api.GenericResource{{Kind: "gpu", Value: 2}}}
			}),
			explain: [2]string{"insufficient resources on 1 node", "insufficient resources on 3 nodes"},
		},
		{name: "no reservations", f: &resourceFilter{}, node: testNode("n"), task: testTask("t", "s")},
		{
			name: "host port taken", f: &hostPortFilter{}, node: testNode("n"), applies: true, fit: 0,
			setup:   func(v *View) { v.UpsertTask(testTask("old", "other", hostPortOpt(8080), runningOn("n"))) },
			task:    testTask("t", "s", hostPortOpt(8080)),
			explain: [2]string{"host-mode port 8080/tcp is in use on every eligible node", "host-mode port 8080/tcp is in use on every eligible node"},
		},
		{
			name: "host port free", f: &hostPortFilter{}, node: testNode("n"), applies: true, fit: 1,
			setup: func(v *View) { v.UpsertTask(testTask("old", "other", hostPortOpt(8081), runningOn("n"))) },
			task:  testTask("t", "s", hostPortOpt(8080)),
		},
		{
			name: "ingress port", f: &hostPortFilter{}, node: testNode("n"),
			task: testTask("t", "s", func(t *api.Task) {
				t.Endpoint = &api.Endpoint{Ports: []*api.PortConfig{{PublishedPort: 8080, PublishMode: api.PortConfig_INGRESS}}}
			}),
		},
		{
			name: "max replicas", f: &maxReplicasFilter{}, node: testNode("n"), task: testTask("t", "s", maxReplicas(2)),
			svc: 2, applies: true, fit: 0,
			explain: [2]string{"max replicas per node (2) reached on 1 node", "max replicas per node (2) reached on 3 nodes"},
		},
		{name: "max replicas room", f: &maxReplicasFilter{}, node: testNode("n"), task: testTask("t", "s", maxReplicas(3)), svc: 1, applies: true, fit: 2},
		{name: "no max replicas", f: &maxReplicasFilter{}, node: testNode("n"), task: testTask("t", "s")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestView(tc.node)
			if tc.setup != nil {
				tc.setup(v)
			}
			g := newGroupSpec(tc.task)
			if g.err != nil {
				t.Fatal(g.err)
			}
			if got := tc.f.setTask(&g); got != tc.applies {
				t.Fatalf("setTask = %v, want %v", got, tc.applies)
			}
			if !tc.applies {
				return
			}
			c := candidate{n: v.nodes[tc.node.Id], svc: tc.svc}
			if got := tc.f.fit(&c); got != tc.fit {
				t.Errorf("fit = %d, want %d", got, tc.fit)
			}
			if tc.explain[0] != "" {
				if got := tc.f.Explain(1); got != tc.explain[0] {
					t.Errorf("explain(1) = %q, want %q", got, tc.explain[0])
				}
				if got := tc.f.Explain(3); got != tc.explain[1] {
					t.Errorf("explain(3) = %q, want %q", got, tc.explain[1])
				}
			}
		})
	}
}

// TestPipelineReason checks that each node is counted once, under the
// first filter that refuses it, in pipeline order.
func TestPipelineReason(t *testing.T) {
	v := newTestView(
		testNode("down", down, labels("zone", "west")), // ready refuses first
		testNode("drained", drained),
		testNode("west1", labels("zone", "west")),
		testNode("west2", labels("zone", "west")),
		testNode("small", labels("zone", "east"), resources(4e9, gib)),
		testNode("full", labels("zone", "east")),
	)
	v.UpsertTask(testTask("old", "other", reserve(0, 7*gib), runningOn("full")))
	p := v.Schedule([]*api.Task{testTask("t", "s", reserve(0, 2*gib), constraints("node.labels.zone==east"))}, t0)
	want := "no suitable node (1 node not ready; 1 node not available for new tasks (paused or drained); " +
		"scheduling constraints not satisfied on 2 nodes; insufficient memory on 2 nodes)"
	if len(p.Unplaced) != 1 || p.Unplaced[0].Reason != want {
		t.Fatalf("unplaced = %+v\nwant reason %q", p.Unplaced, want)
	}
	// In a word: the filter that refused the most nodes, the first on a tie.
	if c := p.Unplaced[0].Cause; c != "constraints" {
		t.Fatalf("cause %q, want constraints", c)
	}

	empty := NewView()
	p = empty.Schedule([]*api.Task{testTask("t", "s")}, t0)
	if p.Unplaced[0].Reason != "no suitable node (no nodes in the cluster)" || p.Unplaced[0].Cause != "no-nodes" {
		t.Fatalf("reason on an empty cluster = %q (%s)", p.Unplaced[0].Reason, p.Unplaced[0].Cause)
	}
}
