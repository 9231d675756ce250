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

// checkIndex verifies the load index: it holds exactly the schedulable
// nodes, each under its current task count, in key order, with the heap
// property on the priorities.
func checkIndex(t *testing.T, v *View) {
	t.Helper()
	var in []*nodeInfo
	var walk func(n *nodeInfo)
	walk = func(n *nodeInfo) {
		if n == nil {
			return
		}
		for _, c := range []*nodeInfo{n.left, n.right} {
			if c != nil && c.hash > n.hash {
				t.Fatalf("index: %s under %s has a higher priority", c.id, n.id)
			}
		}
		walk(n.left)
		in = append(in, n)
		walk(n.right)
	}
	walk(v.index.root)
	if len(in) != v.index.size {
		t.Fatalf("index: %d nodes, size says %d", len(in), v.index.size)
	}
	for i, n := range in {
		if !n.inIndex || !schedulable(n) || n.keyTasks != n.tasks || v.nodes[n.id] != n {
			t.Fatalf("index: %s in it (inIndex %v, schedulable %v, key %d, tasks %d)", n.id, n.inIndex, schedulable(n), n.keyTasks, n.tasks)
		}
		if i > 0 && !keyBefore(in[i-1], n.keyTasks, n.ring, n.id) {
			t.Fatalf("index: %s before %s out of order", in[i-1].id, n.id)
		}
	}
	want := 0
	for _, n := range v.live {
		if schedulable(n) {
			want++
		}
	}
	if want != len(in) {
		t.Fatalf("index: %d nodes, %d schedulable", len(in), want)
	}
}
