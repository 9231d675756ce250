package scheduler

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

func TestSpread(t *testing.T) {
	for _, tc := range []struct {
		name     string
		nodes    int
		existing []int // tasks of the service already on n01, n02, …
		others   []int // tasks of another service already on n01, n02, …
		place    int
		want     []int // placements on n01, n02, … ; nil: check sortedWant
		sorted   []int // placements per node, largest first
	}{
		{name: "10 on 3", nodes: 3, place: 10, sorted: []int{4, 3, 3}},
		{name: "3 on 3", nodes: 3, place: 3, sorted: []int{1, 1, 1}},
		{name: "2 on 5", nodes: 5, place: 2, sorted: []int{1, 1, 0, 0, 0}},
		{name: "levels existing", nodes: 3, existing: []int{3}, place: 6, want: []int{0, 3, 3}},
		{name: "fills lowest first", nodes: 3, existing: []int{5, 1}, place: 7, want: []int{0, 3, 4}},
		{name: "overfull node waits", nodes: 3, existing: []int{5}, place: 7, sorted: []int{4, 3, 0}},
		{name: "fewest overall breaks ties", nodes: 3, others: []int{2, 1}, place: 1, want: []int{0, 0, 1}},
		{name: "fewest overall then service", nodes: 3, others: []int{2, 1}, place: 4, want: []int{1, 1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := nodesN(tc.nodes)
			v := newTestView(nodes...)
			for i, k := range tc.existing {
				for j := range k {
					v.UpsertTask(testTask(fmt.Sprintf("old%d.%d", i, j), "s", runningOn(nodes[i].Id)))
				}
			}
			for i, k := range tc.others {
				for j := range k {
					v.UpsertTask(testTask(fmt.Sprintf("other%d.%d", i, j), "other", runningOn(nodes[i].Id)))
				}
			}
			p := v.Schedule(testTasks("s", tc.place), t0)
			mustPlaceAll(t, p, tc.place)
			got := perNode(p)
			if tc.want != nil {
				for i, w := range tc.want {
					if got[nodes[i].Id] != w {
						t.Fatalf("placements %v, want %v in node order", got, tc.want)
					}
				}
			}
			if tc.sorted != nil && !slices.Equal(sortedCounts(got, nodes), tc.sorted) {
				t.Fatalf("placements %v, want counts %v", got, tc.sorted)
			}
		})
	}
}

func TestDifferentServicesUseDifferentNodes(t *testing.T) {
	nodes := nodesN(3)
	v := newTestView(nodes...)
	var pending []*api.Task
	for i := range 3 {
		pending = append(pending, testTask(fmt.Sprintf("t%d", i), fmt.Sprintf("svc%d", i)))
	}
	p := v.Schedule(pending, t0)
	mustPlaceAll(t, p, 3)
	if got := sortedCounts(perNode(p), nodes); !slices.Equal(got, []int{1, 1, 1}) {
		t.Fatalf("three single-task services landed %v", perNode(p))
	}
}

func TestNextCallSeesPlacements(t *testing.T) {
	nodes := nodesN(2)
	v := newTestView(nodes...)
	p1 := v.Schedule(testTasks("s", 3), t0)
	p2 := v.Schedule([]*api.Task{testTask("s.4", "s")}, t0)
	mustPlaceAll(t, p2, 1)
	got := perNode(p1)
	got[p2.Assigned[0].NodeID]++
	if got["n01"] != 2 || got["n02"] != 2 {
		t.Fatalf("after two calls: %v, want 2 and 2", got)
	}
	if u, _ := v.Usage("n01"); u.Tasks != 2 {
		t.Fatalf("view holds %d tasks on n01, want 2", u.Tasks)
	}
}

func TestFailedCommitReleases(t *testing.T) {
	v := newTestView(testNode("a"))
	task := testTask("t", "s", reserve(3e9, 0))
	p := v.Schedule([]*api.Task{task}, t0)
	mustPlaceAll(t, p, 1)
	// Passing the same pending task again does not count it twice.
	p = v.Schedule([]*api.Task{task}, t0)
	mustPlaceAll(t, p, 1)
	if u, _ := v.Usage("a"); u.NanoCPUs != 3e9 || u.Tasks != 1 {
		t.Fatalf("usage %+v after rescheduling the same task", u)
	}
	// The manager could not commit: it feeds the task as stored.
	v.UpsertTask(task)
	if u, _ := v.Usage("a"); u != (NodeUsage{}) {
		t.Fatalf("usage %+v after release", u)
	}
}

func TestResourcesToTheLimit(t *testing.T) {
	// 4 CPUs and 8 GiB take exactly four tasks of 1 CPU and 2 GiB.
	nodes := []*api.Node{testNode("a"), testNode("b", resources(4e9, 8*gib-1)), testNode("c", resources(4e9-1, 8*gib))}
	v := newTestView(nodes...)
	p := v.Schedule(testTasks("s", 13, reserve(1e9, 2*gib)), t0)
	got := perNode(p)
	if got["a"] != 4 || got["b"] != 3 || got["c"] != 3 || len(p.Unplaced) != 3 {
		t.Fatalf("placements %v, unplaced %d", got, len(p.Unplaced))
	}
	if want := "no suitable node (insufficient resources on 3 nodes)"; p.Unplaced[0].Reason != want {
		t.Fatalf("reason %q, want %q", p.Unplaced[0].Reason, want)
	}
	if u, _ := v.Usage("a"); u.NanoCPUs != 4e9 || u.MemoryBytes != 8*gib {
		t.Fatalf("usage of a = %+v, want all of it", u)
	}
	// Full is full, in a later call too.
	p = v.Schedule([]*api.Task{testTask("x", "other", reserve(1, 0))}, t0)
	mustPlaceAll(t, p, 1)
	if p.Assigned[0].NodeID == "a" {
		t.Fatal("placed a task on a full node")
	}
	// A task that reserves nothing fits anywhere.
	mustPlaceAll(t, v.Schedule(testTasks("free", 5), t0), 5)
}

func TestMaxReplicasPerNode(t *testing.T) {
	nodes := nodesN(3)
	v := newTestView(nodes...)
	// A task of an older spec version counts: the limit is per service.
	v.UpsertTask(testTask("old", "s", version(1), runningOn("n01")))
	p := v.Schedule(testTasks("s", 7, version(2), maxReplicas(2)), t0)
	got := perNode(p)
	if got["n01"] != 1 || got["n02"] != 2 || got["n03"] != 2 || len(p.Unplaced) != 2 {
		t.Fatalf("placements %v, unplaced %d", got, len(p.Unplaced))
	}
	if want := "no suitable node (max replicas per node (2) reached on 3 nodes)"; p.Unplaced[0].Reason != want {
		t.Fatalf("reason %q, want %q", p.Unplaced[0].Reason, want)
	}
}

func TestHostPorts(t *testing.T) {
	v := newTestView(nodesN(3)...)
	p := v.Schedule(testTasks("web", 4, hostPortOpt(8080)), t0)
	if got := perNode(p); len(got) != 3 || len(p.Unplaced) != 1 {
		t.Fatalf("placements %v, unplaced %d: want one per node", got, len(p.Unplaced))
	}
	if want := "no suitable node (host-mode port 8080/tcp is in use on every eligible node)"; p.Unplaced[0].Reason != want {
		t.Fatalf("reason %q", p.Unplaced[0].Reason)
	}
	p = v.Schedule([]*api.Task{testTask("x", "other", hostPortOpt(8080))}, t0)
	if len(p.Unplaced) != 1 || p.Unplaced[0].Reason != "no suitable node (host-mode port 8080/tcp is in use on every eligible node)" {
		t.Fatalf("another service took a used port: %+v", p)
	}
	mustPlaceAll(t, v.Schedule([]*api.Task{testTask("y", "other", hostPortOpt(8081))}, t0), 1)
}

func TestFailurePushDown(t *testing.T) {
	nodes := nodesN(3)
	v := newTestView(nodes...)
	for i := range maxFailures {
		v.RecordFailure("s", "n01", t0.Add(time.Duration(i)*time.Second))
	}
	now := t0.Add(time.Minute)
	p := v.Schedule(testTasks("s", 5), now)
	if got := perNode(p); got["n01"] != 0 || got["n02"]+got["n03"] != 5 {
		t.Fatalf("placements %v: the failing node should come last", got)
	}
	// Only when the others are full does the failing node take tasks.
	small := newTestView(testNode("bad"), testNode("ok", resources(1e9, gib)))
	for range maxFailures {
		small.RecordFailure("s", "bad", t0)
	}
	if got := perNode(small.Schedule(testTasks("s", 3, reserve(1e9, 0)), now)); got["ok"] != 1 || got["bad"] != 2 {
		t.Fatalf("placements %v, want ok:1 bad:2", got)
	}
	// Other services do not care.
	if got := perNode(v.Schedule([]*api.Task{testTask("o", "other")}, now)); got["n01"] != 1 {
		t.Fatalf("another service avoided the node: %v", got)
	}
	// After the window the node is fine again (it has the fewest tasks of s).
	if got := perNode(v.Schedule([]*api.Task{testTask("s.9", "s")}, t0.Add(10*time.Minute))); got["n01"] != 1 {
		t.Fatalf("placements %v after the window, want n01", got)
	}
}

func TestPinnedTasks(t *testing.T) {
	v := newTestView(
		testNode("ok"),
		testNode("drained", drained),
		testNode("small", resources(4e9, gib)),
		testNode("east", labels("zone", "east")),
		testNode("down", down),
	)
	global := func(node string, opts ...taskOpt) *api.Task {
		return testTask("g-"+node, "g", append(opts, on(node), reserve(0, 2*gib), constraints("node.labels.zone!=west"))...)
	}
	pending := []*api.Task{
		global("ok"), global("drained"), global("small"), global("east"), global("down"), global("gone"),
	}
	p := v.Schedule(pending, t0)
	assigned := perNode(p)
	if len(assigned) != 2 || assigned["ok"] != 1 || assigned["east"] != 1 {
		t.Fatalf("assigned %v, want ok and east", assigned)
	}
	want := map[string]string{
		"g-drained": "no suitable node (1 node not available for new tasks (paused or drained))",
		"g-small":   "no suitable node (insufficient memory on 1 node)",
		"g-down":    "no suitable node (1 node not ready)",
		"g-gone":    "no suitable node (node gone is not in the cluster)",
	}
	for _, u := range p.Unplaced {
		if want[u.TaskID] != u.Reason {
			t.Errorf("%s: reason %q, want %q", u.TaskID, u.Reason, want[u.TaskID])
		}
	}
	if u, _ := v.Usage("ok"); u.MemoryBytes != 2*gib {
		t.Fatalf("pinned placement not recorded: %+v", u)
	}
	// Constraints apply to pinned tasks too.
	p = v.Schedule([]*api.Task{testTask("w", "g2", on("ok"), constraints("node.role==manager"))}, t0)
	if len(p.Unplaced) != 1 || p.Unplaced[0].Reason != "no suitable node (scheduling constraints not satisfied on 1 node)" {
		t.Fatalf("plan %+v", p)
	}
}

func TestPinnedBeforeFree(t *testing.T) {
	v := newTestView(testNode("a", resources(1e9, gib)))
	free := testTask("free", "replicated", reserve(1e9, 0))
	pinned := testTask("pinned", "global", reserve(1e9, 0), on("a"))
	p := v.Schedule([]*api.Task{free, pinned}, t0)
	if len(p.Assigned) != 1 || p.Assigned[0].TaskID != "pinned" {
		t.Fatalf("plan %+v: the pinned task has nowhere else to go and should win", p)
	}
}

func TestGroupsBySpecVersion(t *testing.T) {
	v := newTestView(testNode("a", labels("zone", "a")), testNode("b", labels("zone", "b")))
	pending := append(testTasks("v1", 2, constraints("node.labels.zone==a")), testTasks("v2", 2, version(2))...)
	for _, task := range pending {
		task.ServiceId = "s" // one service, two spec versions
	}
	p := v.Schedule(pending, t0)
	mustPlaceAll(t, p, 4)
	for _, a := range p.Assigned {
		if a.Task.SpecVersion == 1 && a.NodeID != "a" {
			t.Fatalf("version 1 task %s on %s despite its constraint", a.TaskID, a.NodeID)
		}
	}
	if got := perNode(p); got["b"] != 2 || got["a"] != 2 {
		t.Fatalf("placements %v: version 2 should balance the service on b", got)
	}
	// Tasks without a service are each their own group.
	lone := []*api.Task{testTask("x", "", reserve(1e9, 0)), testTask("y", "", constraints("node.labels.zone==b"))}
	p = v.Schedule(lone, t0)
	mustPlaceAll(t, p, 2)
	if p.Assigned[1].NodeID != "b" {
		t.Fatalf("plan %+v", p.Assigned)
	}
}

func TestInvalidSpecReason(t *testing.T) {
	v := newTestView(testNode("a"))
	p := v.Schedule(append(testTasks("s", 2, constraints("node.zone==a")), testTask("p", "g", on("a"), prefs("zone"))), t0)
	if len(p.Unplaced) != 3 || len(p.Assigned) != 0 {
		t.Fatalf("plan %+v", p)
	}
	for _, u := range p.Unplaced {
		if u.Reason == "" || u.Reason[:8] != "invalid " {
			t.Fatalf("reason %q", u.Reason)
		}
	}
}

func TestDeterminism(t *testing.T) {
	nodes := nodesN(20, labels("zone", "z"))
	for i, n := range nodes {
		n.Spec.Annotations.Labels["zone"] = fmt.Sprintf("z%d", i%3)
		if i%4 == 0 {
			n.Description.Resources.MemoryBytes = 3 * gib
		}
	}
	build := func(reverse bool) *View {
		ns := slices.Clone(nodes)
		if reverse {
			slices.Reverse(ns)
		}
		v := newTestView(ns...)
		v.UpsertTask(testTask("old", "a", runningOn("n05")))
		v.RemoveNode("n07")
		v.UpsertNode(nodes[6])
		return v
	}
	pending := func() []*api.Task {
		var ts []*api.Task
		ts = append(ts, testTasks("a", 30, reserve(0, gib))...)
		ts = append(ts, testTasks("b", 17, prefs("node.labels.zone"))...)
		ts = append(ts, testTasks("c", 9, maxReplicas(1), reserve(1e9, 2*gib))...)
		return ts
	}
	key := func(p Plan) []string {
		var out []string
		for _, a := range p.Assigned {
			out = append(out, a.TaskID+"@"+a.NodeID)
		}
		for _, u := range p.Unplaced {
			out = append(out, u.TaskID+"!"+u.Reason)
		}
		return out
	}
	first := key(build(false).Schedule(pending(), t0))
	for _, reverse := range []bool{false, true} {
		if got := key(build(reverse).Schedule(pending(), t0)); !slices.Equal(got, first) {
			t.Fatalf("reverse=%v: plans differ:\n%v\n%v", reverse, first, got)
		}
	}
}

func slot(n uint64) taskOpt { return func(t *api.Task) { t.Slot = n } }

// A start-first update of a service at its per-node limit: each new task
// takes its slot's place on the same node instead of being refused there
// (Docker counts old and new, and the update never progresses).
func TestReplacementTakesItsSlotsPlaceUnderMaxReplicas(t *testing.T) {
	v := newTestView(testNode("n1"), testNode("n2"))
	v.UpsertTask(testTask("old1", "svc", maxReplicas(1), version(1), slot(1), runningOn("n1")))
	v.UpsertTask(testTask("old2", "svc", maxReplicas(1), version(1), slot(2), runningOn("n2")))
	plan := v.Schedule([]*api.Task{
		testTask("new1", "svc", maxReplicas(1), version(2), slot(1)),
		testTask("new2", "svc", maxReplicas(1), version(2), slot(2)),
	}, time.Unix(0, 0))
	if len(plan.Unplaced) != 0 {
		t.Fatalf("unplaced: %+v", plan.Unplaced)
	}
	got := map[string]string{}
	for _, a := range plan.Assigned {
		got[a.TaskID] = a.NodeID
	}
	if got["new1"] != "n1" || got["new2"] != "n2" {
		t.Fatalf("replacements placed %v, want each on its slot's node", got)
	}
	// A task of a new slot still respects the limit.
	plan = v.Schedule([]*api.Task{testTask("new3", "svc", maxReplicas(1), version(2), slot(3))}, time.Unix(0, 0))
	if len(plan.Assigned) != 0 || len(plan.Unplaced) != 1 || !strings.Contains(plan.Unplaced[0].Reason, "max replicas per node (1)") {
		t.Fatalf("a new slot over the limit: %+v", plan)
	}
	// Once the old tasks are gone, the slot index forgets them.
	v.RemoveTask("old1")
	v.RemoveTask("old2")
	s1, s2 := v.slots[slotID{"svc", 1}], v.slots[slotID{"svc", 2}]
	if s1.len() != 1 || s2.len() != 1 {
		t.Fatalf("slot index %v", v.slots)
	}
}

// The reason names the host-mode ports in use, with their protocol.
func TestHostPortsReasonNamesPorts(t *testing.T) {
	v := newTestView(nodesN(2)...)
	udp := func(port uint32) taskOpt {
		return func(t *api.Task) {
			t.Endpoint.Ports = append(t.Endpoint.Ports, &api.PortConfig{Protocol: api.PortConfig_UDP, TargetPort: 53, PublishedPort: port, PublishMode: api.PortConfig_HOST})
		}
	}
	v.UpsertTask(testTask("a", "dns", hostPortOpt(9000), udp(5353), runningOn("n01")))
	v.UpsertTask(testTask("b", "other", hostPortOpt(9001), udp(5353), runningOn("n02")))
	p := v.Schedule([]*api.Task{testTask("x", "third", hostPortOpt(9002), udp(5353))}, t0)
	want := "no suitable node (host-mode port 5353/udp is in use on every eligible node)"
	if len(p.Unplaced) != 1 || p.Unplaced[0].Reason != want {
		t.Fatalf("got %+v, want reason %q", p.Unplaced, want)
	}
	tcp := func(port uint32) taskOpt {
		return func(t *api.Task) {
			t.Endpoint.Ports = append(t.Endpoint.Ports, &api.PortConfig{TargetPort: 80, PublishedPort: port, PublishMode: api.PortConfig_HOST})
		}
	}
	p = v.Schedule([]*api.Task{testTask("y", "fourth", hostPortOpt(9000), tcp(9001))}, t0)
	want = "no suitable node (host-mode port 9000/tcp or 9001/tcp is in use on every eligible node)"
	if len(p.Unplaced) != 1 || p.Unplaced[0].Reason != want {
		t.Fatalf("got %+v, want reason %q", p.Unplaced, want)
	}
}

// A slot's holders: the first inline, more in a map, in any order of
// arrivals and departures; an empty slot says so.
func TestSlotHolders(t *testing.T) {
	n1, n2, n3 := &nodeInfo{id: "n1"}, &nodeInfo{id: "n2"}, &nodeInfo{id: "n3"}
	holders := func(h *slotHolders) map[string]string {
		out := map[string]string{}
		h.each(func(id string, n *nodeInfo) { out[id] = n.id })
		return out
	}
	h := &slotHolders{}
	h.put("a", n1)
	h.put("b", n2)
	h.put("c", n3)
	h.put("b", n1) // moved
	if got := holders(h); len(got) != 3 || got["a"] != "n1" || got["b"] != "n1" || got["c"] != "n3" || h.len() != 3 {
		t.Fatalf("holders %v (len %d)", got, h.len())
	}
	if h.remove("a") {
		t.Fatal("a slot with two holders left says it is empty")
	}
	h.put("b", n2) // held in the map while the inline place is free
	h.put("d", n3)
	if got := holders(h); len(got) != 3 || got["b"] != "n2" || got["c"] != "n3" || got["d"] != "n3" {
		t.Fatalf("after a left and d came: %v", got)
	}
	if h.remove("b") || h.remove("c") || !h.remove("d") {
		t.Fatal("the slot is empty only after its last holder left")
	}
	if (*slotHolders)(nil).len() != 0 || len(holders(nil)) != 0 {
		t.Fatal("no holders for a slot never seen")
	}
}
