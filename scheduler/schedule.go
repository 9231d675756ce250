package scheduler

import (
	"time"

	api "github.com/shoal-project/shoal/proto"
)

// Plan is the outcome of one Schedule call. Both lists follow the order in
// which Schedule decided: tasks already bound to a node first, then group
// by group in the order groups first appear in pending.
type Plan struct {
	Assigned []Assignment
	Unplaced []Unplaced
}

// Assignment binds a pending task to a node.
type Assignment struct {
	TaskID string
	NodeID string
	Task   *api.Task // the pending task as given to Schedule
}

// Unplaced is a task that stays pending, with the reason to show in its
// status, e.g. "no suitable node (insufficient resources on 2 nodes)".
type Unplaced struct {
	TaskID string
	Reason string
	// Cause is the reason in a word, for metrics: the filter that refused
	// the most nodes (node-not-ready, node-availability, platform,
	// constraints, resources, host-port, max-replicas), no-nodes,
	// node-gone (a task bound to a node no longer in the cluster) or
	// invalid-spec (constraints or preferences that do not parse).
	Cause string
	Task  *api.Task
}

// groupSpec is what the tasks of one group share: Schedule reads it once
// from the group's first task, since tasks of one service and spec version
// have one spec.
type groupSpec struct {
	service     string
	seed        uint64 // hash of the service ID: spread preferences break ties on it
	ring        uint64 // mix(seed): the service's point on the nodes' tie-break ring
	staticKey   string // platforms and constraints: groups equal in it share a static scan
	shared      bool   // another group of this Schedule call has the same staticKey
	cpu, mem    int64
	generic     []genericReq
	hold        *holding // shared by the group's placed tasks
	ports       []hostPort
	maxReplicas uint64
	platforms   []*api.Platform
	constraints []Constraint
	prefs       []Preference
	err         error // invalid constraints or preferences: place nothing
}

type genericReq struct {
	kind  string
	value int64
}

// candidate is a node that passed the static filters for a group, with
// what the placement needs to rank it.
type candidate struct {
	n       *nodeInfo
	svc     int    // tasks of the group's service on the node
	total   int    // tasks on the node, a copy so that ranking stays in cands
	cap     int    // tasks of the group it can still take
	bind    int8   // filter bounding cap, -1 when only the group size does
	flagged bool   // the service failed here recently: rank last
	tie     uint64 // the node's ring position minus the service's: see less
	placed  int
}

type groupKey struct {
	service string
	version uint64
}

type group struct {
	spec   groupSpec
	free   []*api.Task // to place
	pinned []*api.Task // already bound to a node: to validate
}

// Schedule places pending tasks and returns the plan. Tasks are taken in
// groups of one service and spec version and each group is decided at once:
// one pass over the nodes through the filters, then tasks are spread over
// the nodes that fit. Tasks that already name a node (global services) are
// only checked against the filters on that node. now dates failures.
//
// Schedule records its placements in the view as if the store had them, so
// the next call sees them. When the manager cannot commit an assignment, it
// feeds the task as stored (still PENDING, no node) to UpsertTask, which
// releases the placement. A pending task the view believes placed is
// released first: the caller saying it is pending is the newer news.
//
// Each task must appear at most once in pending. The plan depends only on
// the view and on pending (in order), not on map
// order or the order nodes were added: ties break on a hash of node and
// service IDs.
func (v *View) Schedule(pending []*api.Task, now time.Time) Plan {
	groups := v.groups(pending)
	uses := make(map[string]int)
	for _, g := range groups {
		uses[g.spec.staticKey]++
	}
	for _, g := range groups {
		g.spec.shared = uses[g.spec.staticKey] > 1
	}
	var plan Plan
	plan.Assigned = make([]Assignment, 0, len(pending))
	// Pinned tasks first: they can go nowhere else, while free tasks can.
	for _, g := range groups {
		for _, t := range g.pinned {
			v.validate(&g.spec, t, now, &plan)
		}
	}
	for _, g := range groups {
		if g.spec.maxReplicas > 0 && g.spec.err == nil {
			g.free = v.placeInSlots(&g.spec, g.free, now, &plan)
		}
		if len(g.free) > 0 {
			v.placeGroup(&g.spec, g.free, now, &plan)
		}
	}
	return plan
}

// placeInSlots places tasks that replace a running task of their slot (a
// rolling update, start-first) on that task's node when every filter
// allows it, counting the pair as one replica for the max-replicas limit:
// the new task takes the old one's place, it does not add one. Docker
// counts both, so a start-first update of a service at its per-node limit
// can never progress there (moby#40797). It returns the tasks left to place
// normally.
func (v *View) placeInSlots(g *groupSpec, tasks []*api.Task, now time.Time, plan *Plan) []*api.Task {
	rest := tasks[:0:0]
	for _, t := range tasks {
		home := v.slotHome(t)
		if home == nil || home.node == nil {
			rest = append(rest, t)
			continue
		}
		v.pipe.setTask(g)
		svc := v.services[g.service][home]
		cands, ok := v.addCandidate(v.cands[:0], g, home, max(svc-1, 0), now)
		v.cands = cands
		if ok {
			v.pipe.capacity(&cands[0], 1)
			ok = cands[0].cap > 0
		}
		if !ok {
			rest = append(rest, t)
			continue
		}
		v.charge(t.Id, taskInfo{node: home, h: g.hold, slot: t.GetSlot()})
		plan.Assigned = append(plan.Assigned, Assignment{TaskID: t.Id, NodeID: home.id, Task: t})
	}
	return rest
}

// slotHome is the node where another task of t's slot holds resources, nil
// if none (the lowest node ID when several, for a deterministic plan).
func (v *View) slotHome(t *api.Task) *nodeInfo {
	var home *nodeInfo
	k, ok := slotOf(t)
	if !ok {
		return nil
	}
	h := v.slots[k]
	h.each(func(id string, n *nodeInfo) {
		if id != t.Id && (home == nil || n.id < home.id) {
			home = n
		}
	})
	return home
}

func (v *View) groups(pending []*api.Task) []*group {
	var groups []*group
	index := make(map[groupKey]*group)
	for _, t := range pending {
		if t == nil {
			continue
		}
		if old, ok := v.tasks[t.Id]; ok {
			v.release(t.Id, old)
		}
		k := groupKey{t.ServiceId, t.SpecVersion}
		if k.service == "" {
			// No service to share a spec with: the task is its own group.
			k.service = "\x00task:" + t.Id
		}
		g := index[k]
		if g == nil {
			g = &group{spec: newGroupSpec(t)}
			index[k] = g
			groups = append(groups, g)
		}
		if t.NodeId != "" {
			g.pinned = append(g.pinned, t)
		} else {
			g.free = append(g.free, t)
		}
	}
	return groups
}

func newGroupSpec(t *api.Task) groupSpec {
	h := newHolding(t)
	p := t.GetSpec().GetPlacement()
	g := groupSpec{
		service:     h.service,
		seed:        hashString(h.service),
		ring:        mix(hashString(h.service)),
		cpu:         h.cpu,
		mem:         h.mem,
		hold:        h,
		ports:       h.ports,
		maxReplicas: p.GetMaxReplicas(),
		platforms:   p.GetPlatforms(),
	}
	for _, gr := range h.generic {
		if gr.GetValue() <= 0 {
			continue
		}
		i := 0
		for i < len(g.generic) && g.generic[i].kind != gr.GetKind() {
			i++
		}
		if i == len(g.generic) {
			g.generic = append(g.generic, genericReq{kind: gr.GetKind()})
		}
		g.generic[i].value += gr.GetValue()
	}
	g.constraints, g.err = ParseConstraints(p.GetConstraints())
	if g.err == nil {
		g.prefs, g.err = ParsePreferences(p.GetPreferences())
	}
	if g.err == nil {
		g.staticKey = staticKey(&g)
	}
	return g
}

// addCandidate appends node n to cands as a candidate for group g, or
// leaves cands as it was when a static filter refuses n (the pipeline counts
// the refusal). The filters get a pointer into cands rather than to a local,
// which would escape to the heap through the filter interface: one
// allocation per node per group.
func (v *View) addCandidate(cands []candidate, g *groupSpec, n *nodeInfo, svc int, now time.Time) ([]candidate, bool) {
	cands = append(cands, candidate{n: n, svc: svc, total: n.tasks})
	c := &cands[len(cands)-1]
	if !v.pipe.passStatic(c) {
		return cands[:len(cands)-1], false
	}
	c.flagged = n.failures != nil && n.failedRecently(g.service, now)
	c.tie = n.ring - g.ring
	return cands, true
}

// validate checks a task bound to a node against the filters on that node.
func (v *View) validate(g *groupSpec, t *api.Task, now time.Time, plan *Plan) {
	if g.err != nil {
		plan.Unplaced = append(plan.Unplaced, Unplaced{TaskID: t.Id, Reason: g.err.Error(), Cause: "invalid-spec", Task: t})
		return
	}
	n := v.nodes[t.NodeId]
	if n == nil || n.node == nil {
		plan.Unplaced = append(plan.Unplaced, Unplaced{TaskID: t.Id, Task: t, Cause: "node-gone",
			Reason: "no suitable node (node " + t.NodeId + " is not in the cluster)"})
		return
	}
	v.pipe.setTask(g)
	cands, ok := v.addCandidate(v.cands[:0], g, n, v.services[g.service][n], now)
	v.cands = cands
	if ok {
		v.pipe.capacity(&cands[0], 1)
		ok = cands[0].cap > 0
	}
	if !ok {
		plan.Unplaced = append(plan.Unplaced, Unplaced{TaskID: t.Id, Reason: v.pipe.reason(), Cause: v.pipe.cause(), Task: t})
		return
	}
	v.charge(t.Id, taskInfo{node: n, h: g.hold, slot: t.GetSlot()})
	plan.Assigned = append(plan.Assigned, Assignment{TaskID: t.Id, NodeID: n.id, Task: t})
}

// placeGroup places the free tasks of one group.
func (v *View) placeGroup(g *groupSpec, tasks []*api.Task, now time.Time, plan *Plan) {
	if g.err != nil {
		for _, t := range tasks {
			plan.Unplaced = append(plan.Unplaced, Unplaced{TaskID: t.Id, Reason: g.err.Error(), Cause: "invalid-spec", Task: t})
		}
		return
	}
	v.pipe.setTask(g)
	var cands []candidate
	quick := false
	if len(g.prefs) == 0 && !v.reference {
		// Static filters beyond ready and availability (which every
		// indexed node passes) come from a shared scan when other groups
		// of this call need them too.
		var scan *staticScan
		if len(g.platforms) > 0 || len(g.constraints) > 0 {
			scan = v.staticScan(g, g.shared)
		}
		cands, quick = v.quickCandidates(g, len(tasks), scan, now)
		if !quick {
			v.pipe.setTask(g) // forget what the walk counted
		}
	}
	if !quick {
		cands = v.candidates(g, len(tasks), now)
	}
	order := v.place(g, cands, len(tasks))

	// Bind tasks to nodes in the order the placement chose them, then
	// settle per node what the placed tasks hold.
	for i, ci := range order {
		t, n := tasks[i], cands[ci].n
		ti := taskInfo{node: n, h: g.hold, slot: t.GetSlot()}
		v.tasks[t.Id] = ti
		v.indexSlot(t.Id, ti)
		plan.Assigned = append(plan.Assigned, Assignment{TaskID: t.Id, NodeID: n.id, Task: t})
	}
	for i := range cands {
		if c := &cands[i]; c.placed > 0 {
			v.settle(g, c)
			v.reindex(c.n)
		}
	}
	if len(order) == len(tasks) {
		return
	}
	// Every node that fitted any task is full now: count each under the
	// filter that bounded it, beside the static refusals.
	for i := range cands {
		if c := &cands[i]; c.placed > 0 && c.bind >= 0 {
			v.pipe.counts[c.bind]++
		}
	}
	reason, cause := v.pipe.reason(), v.pipe.cause()
	for _, t := range tasks[len(order):] {
		plan.Unplaced = append(plan.Unplaced, Unplaced{TaskID: t.Id, Reason: reason, Cause: cause, Task: t})
	}
}

// candidates runs the filters over every node once for group g (of size
// k): a node's fit for the group is its capacity, so placing the group
// needs no further filter calls. The static filters' part comes from the
// scan shared with groups of equal platforms and constraints (shared.go).
func (v *View) candidates(g *groupSpec, k int, now time.Time) []candidate {
	v.epoch++
	for n, c := range v.services[g.service] {
		n.mark, n.svc = v.epoch, c
	}
	cands := v.cands[:0]
	if scan := v.staticScan(g, !v.reference); scan != nil {
		copy(v.pipe.counts, scan.counts)
		for _, n := range scan.nodes {
			svc := 0
			if n.mark == v.epoch {
				svc = n.svc
			}
			cands = append(cands, candidate{n: n, svc: svc, total: n.tasks, tie: n.ring - g.ring})
			c := &cands[len(cands)-1]
			c.flagged = n.failures != nil && n.failedRecently(g.service, now)
			v.pipe.capacity(c, k)
		}
		v.cands = cands
		return cands
	}
	for _, n := range v.live {
		svc := 0
		if n.mark == v.epoch {
			svc = n.svc
		}
		var ok bool
		if cands, ok = v.addCandidate(cands, g, n, svc, now); ok {
			// Nodes with no room stay: their tasks count for spread preferences.
			v.pipe.capacity(&cands[len(cands)-1], k)
		}
	}
	v.cands = cands
	return cands
}

// settle charges c's node with what the group's placed tasks hold there,
// once per node rather than per task. fill already raised the node's task
// count, task by task.
func (v *View) settle(g *groupSpec, c *candidate) {
	n, k := c.n, int64(c.placed)
	n.resCPU += k * g.cpu
	n.resMem += k * g.mem
	for _, r := range g.generic {
		if n.resGeneric == nil {
			n.resGeneric = make(map[string]int64)
		}
		n.resGeneric[r.kind] += k * r.value
	}
	for _, p := range g.ports {
		if n.ports == nil {
			n.ports = make(map[hostPort]int)
		}
		n.ports[p] += c.placed
	}
	v.addServiceTasks(g.service, n, c.placed)
}
