package scheduler

import (
	"slices"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

// Failure push-down: a node on which a service failed at least maxFailures
// times within failureWindow goes after every other node for that service.
const (
	maxFailures   = 5
	failureWindow = 5 * time.Minute
)

// View is the scheduler's picture of the cluster: nodes, the tasks that hold
// resources on them, and recent failures. The manager's scheduler loop keeps
// it current by feeding it every node and task event (UpsertNode, RemoveNode,
// UpsertTask, RemoveTask, RecordFailure); each update costs O(1) amortized.
// Schedule records its own placements, so the next call sees them before the
// store does.
//
// A View is not safe for concurrent use: one goroutine (the scheduler loop)
// owns it.
type View struct {
	nodes    map[string]*nodeInfo // by ID, placeholders included
	live     []*nodeInfo          // nodes known from UpsertNode: the candidates
	tasks    map[string]taskInfo  // tasks holding resources, by task ID
	services map[string]map[*nodeInfo]int
	// slots maps a replicated slot to the tasks holding resources in it
	// (task ID -> node), to place a replacement where its slot runs.
	slots map[slotID]slotHolders
	// holds is, by service, the holding UpsertTask gave its last task, so
	// that tasks holding the same share one (holdingOf); an entry goes
	// with its service's last task in the view.
	holds map[string]*holding
	prefs map[prefKey]*prefIndex
	// failed lists, by service, the nodes that may hold failure records of
	// it (a superset: stale entries go when the service is next placed), so
	// that placing a group needs no pass over the nodes to find them.
	failed map[string]map[*nodeInfo]struct{}
	index  loadIndex              // schedulable nodes by load (index.go)
	dirty  []*nodeInfo            // nodes to move in the load indexes
	scans  map[string]*staticScan // shared static filter passes (shared.go)
	// reference makes Schedule scan every node for every group, as it did
	// before the index and the shared scans: tests compare the two.
	reference bool

	// Scratch reused by Schedule so that placing a group allocates little.
	epoch uint64
	cands []candidate
	idx   []int32
	heap  []int32
	order []int32
	pipe  pipeline
	probe candidate
}

// nodeInfo is one node and what is reserved on it. A nodeInfo whose node is
// nil is a placeholder: tasks refer to a node the view does not know (not
// seen yet, or removed while its tasks still run). It is never a candidate
// and goes away with its last task.
//
// The fields every group reads for every node come first, so that the
// pass over the nodes touches one cache line per node in the common case.
type nodeInfo struct {
	ready, active  bool
	tasks          int
	mark           uint64                 // svc is valid while mark equals View.epoch
	svc            int                    // this group's service tasks here: saves a lookup per node
	hash           uint64                 // of the ID, mixed with a service's seed to break ties
	failures       map[string][]time.Time // by service, oldest first, at most maxFailures
	cpu, mem       int64                  // capacity from the node's description
	resCPU, resMem int64

	id         string
	node       *api.Node
	pos        int              // index in View.live, -1 for a placeholder
	generic    map[string]int64 // capacity by generic resource kind
	resGeneric map[string]int64
	ports      map[hostPort]int
	prefIDs    []int32 // by prefIndex slot: value ID + 1, 0 when not looked up yet

	// The load indexes (index.go): the node's place in the view's, and
	// references to its places in shared scans' (shared.go).
	ring  uint64 // mix(hash): the node's place on the tie-break ring
	self  idxNode
	scans []scanRef
	dirty bool // listed in View.dirty
}

// taskInfo is a task holding resources: its node and what it holds there.
// It is three words, so that the task map stays small and cheap to grow.
type taskInfo struct {
	node *nodeInfo
	h    *holding
	slot uint64 // a replicated task's slot in its service (h.service), 0 otherwise
}

// slotID names a replicated task's slot: its service and slot number. A
// key of two fields, not a "<service>/<slot>" string: that string was an
// allocation of about 40 B per task.
type slotID struct {
	service string
	slot    uint64
}

// slotOf is t's slot; false for a task without one (a global task, or one
// without a service).
func slotOf(t *api.Task) (slotID, bool) { return makeSlotID(t.GetServiceId(), t.GetSlot()) }

// slotID is ti's slot, as slotOf of its task.
func (ti taskInfo) slotID() (slotID, bool) { return makeSlotID(ti.h.service, ti.slot) }

func makeSlotID(service string, slot uint64) (slotID, bool) {
	if slot == 0 || service == "" {
		return slotID{}, false
	}
	return slotID{service, slot}, true
}

// holding is what a task holds on its node, kept so that removing the task
// gives exactly that back. Tasks of one group placed together share one.
type holding struct {
	service string
	cpu     int64
	mem     int64
	generic []*api.GenericResource
	ports   []hostPort
}

type hostPort struct {
	proto api.PortConfig_Protocol
	port  uint32
}

// NewView returns an empty view.
func NewView() *View {
	return &View{
		nodes:    make(map[string]*nodeInfo),
		tasks:    make(map[string]taskInfo),
		services: make(map[string]map[*nodeInfo]int),
		slots:    make(map[slotID]slotHolders),
		holds:    make(map[string]*holding),
		prefs:    make(map[prefKey]*prefIndex),
		failed:   make(map[string]map[*nodeInfo]struct{}),
		scans:    make(map[string]*staticScan),
		pipe:     newPipeline(),
	}
}

// UpsertNode adds or replaces a node. The view keeps n and reads it later:
// the caller must not modify n afterwards (store objects are replaced, not
// changed in place, so passing the store's object is fine).
func (v *View) UpsertNode(n *api.Node) {
	if n == nil || n.GetId() == "" {
		return
	}
	ni := v.nodes[n.Id]
	if ni == nil {
		ni = newNodeInfo(n.Id)
		v.nodes[n.Id] = ni
	}
	v.dropScans()
	if ni.pos < 0 {
		ni.pos = len(v.live)
		v.live = append(v.live, ni)
	}
	ni.node = n
	clear(ni.prefIDs) // labels may have changed
	ni.ready = n.GetStatus().GetState() == api.NodeStatus_READY
	ni.active = n.GetSpec().GetAvailability() == api.Availability_ACTIVE
	r := n.GetDescription().GetResources()
	ni.cpu, ni.mem = r.GetNanoCpus(), r.GetMemoryBytes()
	ni.generic = nil
	for _, g := range r.GetGeneric() {
		if ni.generic == nil {
			ni.generic = make(map[string]int64)
		}
		ni.generic[g.GetKind()] += g.GetValue()
	}
	v.reindex(ni)
}

func newNodeInfo(id string) *nodeInfo {
	h := hashString(id)
	n := &nodeInfo{id: id, pos: -1, hash: h, ring: mix(h)}
	n.self.n = n
	return n
}

// RemoveNode forgets a node. Tasks still on it keep their accounting until
// they are removed, so a node that comes back sees them.
func (v *View) RemoveNode(id string) {
	ni := v.nodes[id]
	if ni == nil || ni.pos < 0 {
		return
	}
	last := v.live[len(v.live)-1]
	v.live[ni.pos] = last
	last.pos = ni.pos
	v.live[len(v.live)-1] = nil
	v.live = v.live[:len(v.live)-1]
	v.dropScans()
	for s := range ni.failures {
		v.forgetFailures(ni, s)
	}
	ni.pos, ni.node, ni.failures, ni.prefIDs = -1, nil, nil, nil
	ni.ready, ni.active = false, false
	v.reindex(ni)
	if ni.tasks == 0 {
		delete(v.nodes, id)
	}
}

// holdsResources says whether t counts against its node: it is on a node
// and has not ended. PENDING tasks with a node (global tasks) do not count
// until Schedule validates them.
func holdsResources(t *api.Task) bool {
	s := t.GetStatus().GetState()
	return t.GetNodeId() != "" && s >= api.TaskState_ASSIGNED && s <= api.TaskState_RUNNING
}

// UpsertTask records a task as the store now has it. A task from ASSIGNED
// to RUNNING with a node holds its reservations, host ports and a count for
// its service there; any other task holds nothing, so feeding a task that
// ended (or whose assignment failed to commit and is PENDING again) releases
// what it held. Feed events in store order: feeding an old unassigned
// version of a task Schedule just placed releases that placement.
func (v *View) UpsertTask(t *api.Task) {
	if t == nil {
		return
	}
	old, had := v.tasks[t.Id]
	if !holdsResources(t) {
		if had {
			v.release(t.Id, old)
		}
		return
	}
	if had {
		if old.node.id == t.NodeId {
			// A task's spec never changes once created, so what it holds
			// on the same node is unchanged: status updates are free.
			return
		}
		v.release(t.Id, old)
	}
	v.charge(t.Id, taskInfo{node: v.nodeOrPlaceholder(t.NodeId), h: v.holdingOf(t), slot: t.GetSlot()})
}

// RemoveTask forgets a task (deleted from the store) and releases what it
// held.
func (v *View) RemoveTask(id string) {
	if old, ok := v.tasks[id]; ok {
		v.release(id, old)
	}
}

// RecordFailure notes that a task of serviceID failed on nodeID at time at.
// The caller calls it once per failed task (on the transition to FAILED or
// REJECTED). Failures on nodes the view does not know are dropped.
func (v *View) RecordFailure(serviceID, nodeID string, at time.Time) {
	ni := v.nodes[nodeID]
	if ni == nil || ni.node == nil {
		return
	}
	if ni.failures == nil {
		ni.failures = make(map[string][]time.Time)
	}
	// Forget services whose failures all left the window, so the map stays
	// as small as the set of services failing right now.
	for s, ts := range ni.failures {
		if at.Sub(ts[len(ts)-1]) > failureWindow {
			delete(ni.failures, s)
			v.forgetFailures(ni, s)
		}
	}
	ts := ni.failures[serviceID]
	i := len(ts)
	for i > 0 && ts[i-1].After(at) {
		i--
	}
	ts = append(ts, time.Time{})
	copy(ts[i+1:], ts[i:])
	ts[i] = at
	if len(ts) > maxFailures {
		ts = append(ts[:0], ts[len(ts)-maxFailures:]...)
	}
	ni.failures[serviceID] = ts
	m := v.failed[serviceID]
	if m == nil {
		m = make(map[*nodeInfo]struct{})
		v.failed[serviceID] = m
	}
	m[ni] = struct{}{}
}

// forgetFailures drops ni from the nodes where service may have failed.
func (v *View) forgetFailures(ni *nodeInfo, service string) {
	if m := v.failed[service]; m != nil {
		if delete(m, ni); len(m) == 0 {
			delete(v.failed, service)
		}
	}
}

// failedRecently reports whether serviceID failed maxFailures times on ni in
// the window before now, and drops the service's record once it is stale.
func (ni *nodeInfo) failedRecently(serviceID string, now time.Time) bool {
	ts, ok := ni.failures[serviceID]
	if !ok {
		return false
	}
	if now.Sub(ts[len(ts)-1]) > failureWindow {
		delete(ni.failures, serviceID)
		if len(ni.failures) == 0 {
			ni.failures = nil
		}
		return false
	}
	recent := 0
	for _, t := range ts {
		if now.Sub(t) <= failureWindow {
			recent++
		}
	}
	return recent >= maxFailures
}

func (v *View) nodeOrPlaceholder(id string) *nodeInfo {
	ni := v.nodes[id]
	if ni == nil {
		ni = newNodeInfo(id)
		v.nodes[id] = ni
	}
	return ni
}

func newHolding(t *api.Task) *holding {
	h := holdingFor(t)
	return &h
}

func holdingFor(t *api.Task) holding {
	r := t.GetSpec().GetResources().GetReservations()
	return holding{
		service: t.GetServiceId(),
		cpu:     max(r.GetNanoCpus(), 0),
		mem:     max(r.GetMemoryBytes(), 0),
		generic: r.GetGeneric(),
		ports:   hostPorts(t),
	}
}

// holdingOf is what t holds, shared with the last task of its service fed
// to UpsertTask when that holds the same: a new leader's view is fed every
// running task, and a holding each was about 80 B per task.
func (v *View) holdingOf(t *api.Task) *holding {
	h := holdingFor(t)
	if c := v.holds[h.service]; c != nil && c.equal(&h) {
		return c
	}
	p := new(holding) // not &h: h would then be allocated for every task
	*p = h
	v.holds[h.service] = p
	return p
}

// equal reports whether h and o hold the same.
func (h *holding) equal(o *holding) bool {
	return h.service == o.service && h.cpu == o.cpu && h.mem == o.mem &&
		slices.Equal(h.ports, o.ports) &&
		slices.EqualFunc(h.generic, o.generic, func(a, b *api.GenericResource) bool {
			return a.GetKind() == b.GetKind() && a.GetValue() == b.GetValue()
		})
}

// hostPorts lists the host-mode ports a task publishes on its node. Ports
// the allocator resolved are in Endpoint.Ports; before that the spec's
// fixed ports are all there is. Port 0 is picked by the node itself, so it
// cannot collide.
func hostPorts(t *api.Task) []hostPort {
	ports := t.GetEndpoint().GetPorts()
	if len(ports) == 0 {
		ports = t.GetEndpoint().GetSpec().GetPorts()
	}
	var out []hostPort
	for _, p := range ports {
		if p.GetPublishMode() == api.PortConfig_HOST && p.GetPublishedPort() != 0 {
			out = append(out, hostPort{p.GetProtocol(), p.GetPublishedPort()})
		}
	}
	return out
}

// charge makes ti's node hold what ti holds.
func (v *View) charge(id string, ti taskInfo) {
	n, h := ti.node, ti.h
	n.tasks++
	n.resCPU += h.cpu
	n.resMem += h.mem
	for _, g := range h.generic {
		if g.GetValue() <= 0 {
			continue // as newGroupSpec: a non-positive reservation holds nothing
		}
		if n.resGeneric == nil {
			n.resGeneric = make(map[string]int64)
		}
		n.resGeneric[g.GetKind()] += g.GetValue()
	}
	for _, p := range h.ports {
		if n.ports == nil {
			n.ports = make(map[hostPort]int)
		}
		n.ports[p]++
	}
	v.addServiceTasks(h.service, n, 1)
	v.tasks[id] = ti
	v.indexSlot(id, ti)
	v.reindex(n)
}

// slotHolders are the tasks holding resources in one slot and their nodes.
// A slot mostly has one (two while a task is replaced), so the first is
// held inline and a map made only for more: a map per slot cost about
// 290 B per task (8 % of the leader's heap in use at 170,000 tasks).
type slotHolders struct {
	id   string // "" when the first holder left and others remain
	node *nodeInfo
	more map[string]*nodeInfo
}

func (h *slotHolders) put(id string, n *nodeInfo) {
	if h.id == id {
		h.node = n
		return
	}
	if _, in := h.more[id]; in {
		h.more[id] = n
		return
	}
	if h.id == "" {
		h.id, h.node = id, n
		return
	}
	if h.more == nil {
		h.more = make(map[string]*nodeInfo, 1)
	}
	h.more[id] = n
}

// len is the number of holders.
func (h *slotHolders) len() int {
	if h == nil {
		return 0
	}
	n := len(h.more)
	if h.id != "" {
		n++
	}
	return n
}

// remove drops id; it reports whether the slot has no holder left.
func (h *slotHolders) remove(id string) bool {
	if h.id == id {
		h.id, h.node = "", nil
	} else {
		delete(h.more, id)
	}
	return h.id == "" && len(h.more) == 0
}

// each calls fn for every holder.
func (h *slotHolders) each(fn func(id string, n *nodeInfo)) {
	if h == nil {
		return
	}
	if h.id != "" {
		fn(h.id, h.node)
	}
	for id, n := range h.more {
		fn(id, n)
	}
}

// indexSlot records which node holds a task of a slot.
func (v *View) indexSlot(id string, ti taskInfo) {
	k, ok := ti.slotID()
	if !ok {
		return
	}
	h := v.slots[k]
	h.put(id, ti.node)
	v.slots[k] = h
}

func (v *View) release(id string, ti taskInfo) {
	delete(v.tasks, id)
	if k, ok := ti.slotID(); ok {
		if h, in := v.slots[k]; in {
			if h.remove(id) {
				delete(v.slots, k)
			} else {
				v.slots[k] = h
			}
		}
	}
	n, h := ti.node, ti.h
	n.tasks--
	n.resCPU -= h.cpu
	n.resMem -= h.mem
	for _, g := range h.generic {
		if g.GetValue() <= 0 {
			continue
		}
		n.resGeneric[g.GetKind()] -= g.GetValue()
		if n.resGeneric[g.GetKind()] == 0 {
			delete(n.resGeneric, g.GetKind())
		}
	}
	for _, p := range h.ports {
		if n.ports[p]--; n.ports[p] <= 0 {
			delete(n.ports, p)
		}
	}
	v.addServiceTasks(h.service, n, -1)
	v.reindex(n)
	if n.node == nil && n.tasks == 0 {
		delete(v.nodes, n.id)
	}
}

func (v *View) addServiceTasks(service string, n *nodeInfo, delta int) {
	m := v.services[service]
	if m == nil {
		m = make(map[*nodeInfo]int)
		v.services[service] = m
	}
	if c := m[n] + delta; c > 0 {
		m[n] = c
	} else {
		delete(m, n)
		if len(m) == 0 {
			delete(v.services, service)
			delete(v.holds, service)
		}
	}
}

// NodeUsage is what the view holds against one node.
type NodeUsage struct {
	Tasks       int // tasks holding resources on the node
	NanoCPUs    int64
	MemoryBytes int64
}

// Usage returns what the view holds against node id, and whether the view
// knows the node.
func (v *View) Usage(id string) (NodeUsage, bool) {
	ni := v.nodes[id]
	if ni == nil || ni.node == nil {
		return NodeUsage{}, false
	}
	return NodeUsage{Tasks: ni.tasks, NanoCPUs: ni.resCPU, MemoryBytes: ni.resMem}, true
}

// ServiceTasks returns how many tasks of serviceID hold resources on node id.
func (v *View) ServiceTasks(serviceID, id string) int {
	ni := v.nodes[id]
	if ni == nil {
		return 0
	}
	return v.services[serviceID][ni]
}

// Size returns the number of nodes and of resource-holding tasks in the view.
func (v *View) Size() (nodes, tasks int) { return len(v.live), len(v.tasks) }

// hashString is FNV-1a: stable across runs and processes, unlike maphash,
// so tie-breaks and thus plans are reproducible.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix is the splitmix64 finalizer: it spreads a node's hash xor a
// service's seed so that different services break ties on different nodes.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
