package scheduler

import (
	"fmt"
	"slices"
	"testing"

	api "github.com/shoal-project/shoal/proto"
)

// zoned makes nodes named by zone: zoned("a", 1, "b", 2) gives a1, b1, b2
// with node.labels.zone set; an empty zone leaves the label off.
func zoned(spec ...any) []*api.Node {
	var out []*api.Node
	for i := 0; i+1 < len(spec); i += 2 {
		zone, n := spec[i].(string), spec[i+1].(int)
		for j := 1; j <= n; j++ {
			name := fmt.Sprintf("%s%d", zone, j)
			if zone == "" {
				out = append(out, testNode(fmt.Sprintf("nolabel%d", j)))
				continue
			}
			out = append(out, testNode(name, labels("zone", zone)))
		}
	}
	return out
}

func TestSpreadPreference(t *testing.T) {
	for _, tc := range []struct {
		name       string
		nodes      []*api.Node
		existing   map[string]int // tasks of the service per node
		opts       []taskOpt
		descriptor string // default node.labels.zone
		place      int
		want       map[string]int // placements per node
	}{
		{
			name: "even across unequal zones", nodes: zoned("a", 1, "b", 2, "c", 3), place: 9,
			want: map[string]int{"a1": 3, "b1": 2, "b2": 1, "c1": 1, "c2": 1, "c3": 1},
		},
		{
			name: "missing label is a zone of its own", nodes: zoned("a", 1, "b", 1, "", 2), place: 6,
			want: map[string]int{"a1": 2, "b1": 2, "nolabel1": 1, "nolabel2": 1},
		},
		{
			name: "existing tasks count", nodes: zoned("a", 2, "b", 1), existing: map[string]int{"a1": 4}, place: 6,
			want: map[string]int{"a2": 1, "b1": 5},
		},
		{
			name: "full nodes still count for their zone", nodes: zoned("a", 2, "b", 1),
			existing: map[string]int{"a1": 4}, opts: []taskOpt{maxReplicas(4)}, place: 4,
			want: map[string]int{"b1": 4},
		},
		{
			name: "a zone without room overflows to the others", nodes: append(zoned("b", 1),
				testNode("a1", labels("zone", "a"), resources(1e9, 8*gib))),
			opts: []taskOpt{reserve(1e9, 0)}, place: 5,
			want: map[string]int{"a1": 1, "b1": 4},
		},
		{
			name: "engine labels", nodes: []*api.Node{
				testNode("x1", engineLabels("rack", "x")), testNode("x2", engineLabels("rack", "x")), testNode("y1", engineLabels("rack", "y")),
			},
			descriptor: "engine.labels.rack", place: 4,
			want: map[string]int{"x1": 1, "x2": 1, "y1": 2},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestView(tc.nodes...)
			for node, k := range tc.existing {
				for j := range k {
					v.UpsertTask(testTask(fmt.Sprintf("old-%s-%d", node, j), "s", runningOn(node)))
				}
			}
			descriptor := "node.labels.zone"
			if tc.descriptor != "" {
				descriptor = tc.descriptor
			}
			opts := append(slices.Clone(tc.opts), prefs(descriptor))
			p := v.Schedule(testTasks("s", tc.place, opts...), t0)
			mustPlaceAll(t, p, tc.place)
			got := perNode(p)
			for _, n := range tc.nodes {
				if got[n.Id] != tc.want[n.Id] {
					t.Fatalf("placements %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestNestedPreferences(t *testing.T) {
	node := func(id, zone, rack string) *api.Node { return testNode(id, labels("zone", zone, "rack", rack)) }
	nodes := []*api.Node{
		node("a-r1", "a", "r1"), node("a-r2", "a", "r2"),
		node("b-r1-1", "b", "r1"), node("b-r1-2", "b", "r1"),
		node("b-r1-3", "b", "r1"), testNode("b-norack", labels("zone", "b")),
	}
	v := newTestView(nodes...)
	p := v.Schedule(testTasks("s", 8, prefs("node.labels.zone", "node.labels.rack")), t0)
	mustPlaceAll(t, p, 8)
	got := perNode(p)
	// Zones get 4 each; zone a's racks 2 each; zone b's rack r1 and its
	// rackless node 2 each, r1's 2 on two of its three nodes.
	if got["a-r1"] != 2 || got["a-r2"] != 2 || got["b-norack"] != 2 ||
		got["b-r1-1"]+got["b-r1-2"]+got["b-r1-3"] != 2 || max(got["b-r1-1"], got["b-r1-2"], got["b-r1-3"]) != 1 {
		t.Fatalf("placements %v", got)
	}
}

func TestPreferencesRespectFilters(t *testing.T) {
	nodes := append(zoned("a", 2, "b", 2), testNode("c1", labels("zone", "c"), drained))
	v := newTestView(nodes...)
	p := v.Schedule(testTasks("s", 6, prefs("node.labels.zone"), constraints("node.hostname!=a2")), t0)
	mustPlaceAll(t, p, 6)
	if got := perNode(p); got["a1"] != 3 || got["b1"]+got["b2"] != 3 || got["a2"] != 0 || got["c1"] != 0 {
		t.Fatalf("placements %v", got)
	}
}

func TestWaterFill(t *testing.T) {
	for _, tc := range []struct {
		counts, caps []int
		k            int
		want         []int
	}{
		{counts: []int{0, 0, 0}, caps: []int{10, 10, 10}, k: 9, want: []int{3, 3, 3}},
		{counts: []int{4, 0, 0}, caps: []int{10, 10, 10}, k: 6, want: []int{0, 3, 3}},
		{counts: []int{4, 0, 0}, caps: []int{10, 10, 10}, k: 2, want: []int{0, 1, 1}},
		{counts: []int{0, 0}, caps: []int{1, 10}, k: 6, want: []int{1, 5}},
		{counts: []int{0, 0}, caps: []int{2, 2}, k: 9, want: []int{2, 2}},
		{counts: []int{3, 1, 0}, caps: []int{5, 5, 0}, k: 4, want: []int{1, 3, 0}},
		{counts: []int{0}, caps: []int{0}, k: 3, want: []int{0}},
	} {
		bs := make([]branch, len(tc.counts))
		for i := range bs {
			bs[i] = branch{lo: i, count: tc.counts[i], cap: tc.caps[i], tie: uint64(i)}
		}
		waterFill(bs, tc.k)
		var got []int
		for _, b := range bs {
			got = append(got, b.alloc)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("counts %v caps %v k %d: got %v, want %v", tc.counts, tc.caps, tc.k, got, tc.want)
		}
	}
}

func TestWaterFillRemainderEven(t *testing.T) {
	// A branch gets a task only while no branch is two or more below it.
	for k := range 20 {
		bs := []branch{{lo: 0, count: 2, cap: 50, tie: 9}, {lo: 1, count: 0, cap: 50, tie: 3}, {lo: 2, count: 5, cap: 50, tie: 7}}
		waterFill(bs, k)
		lowest, highestFilled, sum := 1<<30, 0, 0
		for _, b := range bs {
			sum += b.alloc
			lowest = min(lowest, b.count+b.alloc)
			if b.alloc > 0 {
				highestFilled = max(highestFilled, b.count+b.alloc)
			}
		}
		if sum != k {
			t.Fatalf("k=%d: allocated %d", k, sum)
		}
		if highestFilled-lowest > 1 {
			t.Fatalf("k=%d: uneven %+v", k, bs)
		}
	}
}

// A spread preference over no candidate at all (every node refused by a
// static filter) leaves the tasks pending with the reason; it used to index
// an empty branch list and panic.
func TestSpreadWithNoCandidates(t *testing.T) {
	v := newTestView(nodesN(3)...)
	p := v.Schedule(testTasks("s", 2, prefs("node.labels.zone"), constraints("node.labels.nope==x")), t0)
	want := "no suitable node (scheduling constraints not satisfied on 3 nodes)"
	if len(p.Assigned) != 0 || len(p.Unplaced) != 2 || p.Unplaced[0].Reason != want {
		t.Fatalf("plan %+v, want 2 pending with %q", reasons(p), want)
	}
}
