package scheduler

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

// TestQuickPlansEqualReference runs random clusters and random streams of
// store events and Schedule calls through two views: one as Schedule runs
// (load index walk for groups without preferences, static scans shared by
// groups with equal platforms and constraints) and one with reference set,
// which scans every node through every filter for every group, as Schedule
// did before both. Every plan must be the same, task by task and reason by
// reason, and the load index must stay consistent with the nodes.
func TestQuickPlansEqualReference(t *testing.T) {
	seeds := uint64(300)
	if testing.Short() {
		seeds = 60
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { equivRun(t, seed) })
	}
}

// equivSpec is one of a few specs that services draw from, so that many
// services share a static key and some share whole specs.
type equivSpec struct {
	opts []taskOpt
	desc string
}

func equivSpecs(rng *rand.Rand) []equivSpec {
	cons := [][]string{nil, nil, nil, {"node.labels.zone==z0"}, {"node.labels.zone!=z1"},
		{"node.platform.os==linux"}, {"node.labels.nope==x"}, {"node.role==manager"},
		{"node.labels.zone==z2", "node.labels.rack!=r0"}}
	var out []equivSpec
	for i := range 3 + rng.IntN(6) {
		var opts []taskOpt
		desc := fmt.Sprint("spec", i)
		cpu, mem := int64(rng.IntN(4))*5e8, int64(rng.IntN(3))*gib/2
		opts = append(opts, reserve(cpu, mem))
		if c := cons[rng.IntN(len(cons))]; c != nil {
			opts = append(opts, constraints(c...))
			desc += fmt.Sprint(" ", c)
		}
		if rng.IntN(6) == 0 {
			arch := []string{"amd64", "arm64"}[rng.IntN(2)]
			opts = append(opts, func(t *api.Task) {
				t.Spec.Placement.Platforms = []*api.Platform{{Os: "linux", Architecture: arch}}
			})
		}
		if rng.IntN(4) == 0 {
			opts = append(opts, maxReplicas(uint64(1+rng.IntN(2))))
		}
		if rng.IntN(5) == 0 {
			opts = append(opts, hostPortOpt(uint32(8000+rng.IntN(2))))
		}
		if rng.IntN(6) == 0 {
			opts = append(opts, prefs("node.labels.zone"))
		}
		out = append(out, equivSpec{opts: opts, desc: desc})
	}
	return out
}

func equivNode(rng *rand.Rand, id string) *api.Node {
	opts := []nodeOpt{
		resources(int64(1+rng.IntN(4))*1e9, int64(1+rng.IntN(8))*gib),
		labels("zone", fmt.Sprint("z", rng.IntN(3)), "rack", fmt.Sprint("r", rng.IntN(4))),
	}
	switch rng.IntN(12) {
	case 0:
		opts = append(opts, down)
	case 1:
		opts = append(opts, drained)
	case 2:
		opts = append(opts, paused)
	case 3:
		opts = append(opts, manager)
	case 4:
		opts = append(opts, platform("linux", "arm64"))
	case 5:
		opts = append(opts, platform("windows", "amd64"))
	}
	return testNode(id, opts...)
}

func equivRun(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	quick, ref := NewView(), NewView()
	ref.reference = true
	both := func(f func(v *View)) { f(quick); f(ref) }

	nodeIDs := []string{}
	for i := range 1 + rng.IntN(80) {
		id := fmt.Sprintf("n%03d", i)
		nodeIDs = append(nodeIDs, id)
		n := equivNode(rng, id)
		both(func(v *View) { v.UpsertNode(n) })
	}
	specs := equivSpecs(rng)
	held := map[string]*api.Task{} // tasks the views believe hold resources
	pick := func() string {        // a held task, chosen by the seed alone
		ids := slices.Sorted(maps.Keys(held))
		return ids[rng.IntN(len(ids))]
	}
	now := t0
	svcN := 0
	for call := range 12 {
		now = now.Add(time.Duration(rng.IntN(90)) * time.Second)
		var pending []*api.Task
		for range 1 + rng.IntN(40) {
			sp := specs[rng.IntN(len(specs))]
			var svc string
			if len(held) > 0 && rng.IntN(4) == 0 {
				// A task of a service already placed (a replacement or a
				// scale-up), so the service's counts per node matter.
				svc = held[pick()].ServiceId
			} else {
				svcN++
				svc = fmt.Sprintf("s%03d", svcN)
			}
			k := 1
			if rng.IntN(5) == 0 {
				k = 1 + rng.IntN(12)
			}
			for i := range k {
				tk := testTask(fmt.Sprintf("%s.c%d.%d", svc, call, i), svc, sp.opts...)
				tk.Slot = uint64(1 + rng.IntN(3))
				if rng.IntN(15) == 0 {
					tk.NodeId = nodeIDs[rng.IntN(len(nodeIDs))]
				}
				pending = append(pending, tk)
			}
		}
		pq := quick.Schedule(pending, now)
		pr := ref.Schedule(pending, now)
		equalPlans(t, call, pq, pr)
		checkIndex(t, quick)
		checkIndex(t, ref)

		// Commit most assignments; feed some back as still pending.
		for _, a := range pq.Assigned {
			st := proto.Clone(a.Task).(*api.Task)
			if rng.IntN(10) == 0 {
				both(func(v *View) { v.UpsertTask(st) })
				continue
			}
			st.NodeId = a.NodeID
			st.Status = &api.TaskStatus{State: api.TaskState_RUNNING}
			both(func(v *View) { v.UpsertTask(st) })
			held[st.Id] = st
		}
		// Store events between calls.
		for range rng.IntN(10) {
			switch rng.IntN(6) {
			case 0: // a task ends
				if len(held) > 0 {
					id := pick()
					e := proto.Clone(held[id]).(*api.Task)
					e.Status = &api.TaskStatus{State: api.TaskState_FAILED}
					both(func(v *View) {
						v.UpsertTask(e)
						for range maxFailures {
							v.RecordFailure(e.ServiceId, e.NodeId, now)
						}
					})
					delete(held, id)
				}
			case 1: // a task is removed
				if len(held) > 0 {
					id := pick()
					both(func(v *View) { v.RemoveTask(id) })
					delete(held, id)
				}
			case 2: // a node changes (state, labels, resources)
				id := nodeIDs[rng.IntN(len(nodeIDs))]
				n := equivNode(rng, id)
				both(func(v *View) { v.UpsertNode(n) })
			case 3: // a node leaves
				id := nodeIDs[rng.IntN(len(nodeIDs))]
				both(func(v *View) { v.RemoveNode(id) })
			case 4: // a new node
				id := fmt.Sprintf("n%03d", len(nodeIDs))
				nodeIDs = append(nodeIDs, id)
				n := equivNode(rng, id)
				both(func(v *View) { v.UpsertNode(n) })
			case 5: // failures of a service that has no task there
				id := nodeIDs[rng.IntN(len(nodeIDs))]
				svc := fmt.Sprintf("s%03d", 1+rng.IntN(svcN+1))
				both(func(v *View) {
					for range maxFailures {
						v.RecordFailure(svc, id, now)
					}
				})
			}
		}
		checkIndex(t, quick)
	}
}

func equalPlans(t *testing.T, call int, q, r Plan) {
	t.Helper()
	type pair struct{ a, b string }
	pairs := func(p Plan) (as, us []pair) {
		for _, a := range p.Assigned {
			as = append(as, pair{a.TaskID, a.NodeID})
		}
		for _, u := range p.Unplaced {
			us = append(us, pair{u.TaskID, u.Reason})
		}
		return as, us
	}
	qa, qu := pairs(q)
	ra, ru := pairs(r)
	if !slices.Equal(qa, ra) {
		t.Fatalf("call %d: assignments differ\nquick %v\nref   %v", call, qa, ra)
	}
	if !slices.Equal(qu, ru) {
		t.Fatalf("call %d: unplaced differ\nquick %v\nref   %v", call, qu, ru)
	}
}

// checkIndex verifies the load indexes: the view's holds exactly the
// schedulable nodes and each live scan's exactly its nodes, each under its
// current task count, in key order, with the heap property on the
// priorities.
func checkIndex(t *testing.T, v *View) {
	t.Helper()
	v.flushIndex()
	want := map[*nodeInfo]bool{}
	for _, n := range v.live {
		if schedulable(n) {
			want[n] = true
		}
	}
	checkTree(t, v, "view", &v.index, want)
	for k, s := range v.scans {
		if !s.built {
			continue
		}
		want := map[*nodeInfo]bool{}
		for _, n := range s.nodes {
			want[n] = true
		}
		checkTree(t, v, fmt.Sprintf("scan %q", k), &s.index, want)
	}
	refs := 0
	for _, n := range v.nodes {
		for _, r := range n.scans {
			if v.scans[staticKeyOf(v, r.scan)] != r.scan || r.e.n != n {
				t.Fatalf("node %s refers to a scan dropped or not its own", n.id)
			}
		}
		refs += len(n.scans)
	}
	built := 0
	for _, s := range v.scans {
		if s.built {
			built += len(s.nodes)
		}
	}
	if refs != built {
		t.Fatalf("nodes hold %d scan references, built scans have %d nodes", refs, built)
	}
}

func staticKeyOf(v *View, s *staticScan) string {
	for k, x := range v.scans {
		if x == s {
			return k
		}
	}
	return "\x00dropped"
}

func checkTree(t *testing.T, v *View, name string, x *loadIndex, want map[*nodeInfo]bool) {
	t.Helper()
	var in []*idxNode
	var walk func(e *idxNode)
	walk = func(e *idxNode) {
		if e == nil {
			return
		}
		for _, c := range []*idxNode{e.left, e.right} {
			if c != nil && c.n.hash > e.n.hash {
				t.Fatalf("%s index: %s under %s has a higher priority", name, c.n.id, e.n.id)
			}
		}
		walk(e.left)
		in = append(in, e)
		walk(e.right)
	}
	walk(x.root)
	if len(in) != x.size || len(in) != len(want) {
		t.Fatalf("%s index: %d nodes, size says %d, want %d", name, len(in), x.size, len(want))
	}
	for i, e := range in {
		n := e.n
		if !e.in || !want[n] || e.tasks != n.tasks || v.nodes[n.id] != n {
			t.Fatalf("%s index: %s in it (in %v, wanted %v, key %d, tasks %d)", name, n.id, e.in, want[n], e.tasks, n.tasks)
		}
		if i > 0 && !keyBefore(in[i-1], e.tasks, n.ring, n.id) {
			t.Fatalf("%s index: %s before %s out of order", name, in[i-1].n.id, n.id)
		}
	}
}

// One-task services of one spec fill a small cluster: each goes to the
// least loaded node through the index walk, and once the nodes are full
// the rest stay pending with the reason the full pass counts.
func TestOneTaskServicesFillThenExplain(t *testing.T) {
	nodes := nodesN(4, resources(2e9, 8*gib))
	nodes = append(nodes, testNode("down", down), testNode("other", labels("zone", "z9")))
	v := newTestView(nodes...)
	var pending []*api.Task
	for i := range 10 {
		pending = append(pending, testTask(fmt.Sprintf("s%d.1", i), fmt.Sprint("s", i),
			reserve(1e9, 0), constraints("node.labels.zone!=z9")))
	}
	p := v.Schedule(pending, t0)
	if len(p.Assigned) != 8 || len(p.Unplaced) != 2 {
		t.Fatalf("placed %d, pending %d, want 8 and 2", len(p.Assigned), len(p.Unplaced))
	}
	for id, c := range perNode(p) {
		if c != 2 {
			t.Fatalf("%s got %d tasks, want 2 on each of the 4 nodes (%v)", id, c, perNode(p))
		}
	}
	// The first four go one per node: each to the least loaded.
	seen := map[string]bool{}
	for _, a := range p.Assigned[:4] {
		if seen[a.NodeID] {
			t.Fatalf("%s took a second task before every node had one: %v", a.NodeID, p.Assigned[:4])
		}
		seen[a.NodeID] = true
	}
	want := "no suitable node (1 node not ready; scheduling constraints not satisfied on 1 node; insufficient CPU on 4 nodes)"
	for _, u := range p.Unplaced {
		if u.Reason != want || u.Cause != "resources" {
			t.Fatalf("%s: %q (%s), want %q (resources)", u.TaskID, u.Reason, u.Cause, want)
		}
	}
}
