package orchestrator

import (
	api "github.com/shoal-project/shoal/proto"
)

// slotIndex groups a service's tasks by slot (slotKey). A pass over a
// service of 1,000,000 replicas groups its tasks twice (bySlot, reap): a
// map of a million keys, and a slice of its own per slot, cost about a
// second and 100 MB each. So the replicated slots 1..dense live in one
// array, in the order of the tasks given (slot s holds
// flat[start[s]:end(s)]), and only the rest (a global service's nodes, slots
// beyond the number of tasks) in a map. dense is at most the number of
// tasks indexed, whatever their slot numbers.
type slotIndex struct {
	start  []int32 // start[s]: where slot s begins in flat, for s in 1..dense
	flat   []*api.Task
	sparse map[slotKey][]*api.Task
}

// indexSlots indexes the tasks keep accepts; keep is called once per task,
// in order.
func indexSlots(tasks []*api.Task, keep func(*api.Task) bool) slotIndex {
	// where[i]: task i's dense slot, 0 when it goes to the map, -1 when
	// not kept.
	where := make([]int32, len(tasks))
	kept := 0
	var top uint64
	for i, t := range tasks {
		if !keep(t) {
			where[i] = -1
			continue
		}
		kept++
		top = max(top, t.Slot)
	}
	dense := min(top, uint64(kept))
	var x slotIndex
	x.start = make([]int32, dense+1)
	for i, t := range tasks {
		switch {
		case where[i] < 0:
		case t.Slot >= 1 && t.Slot <= dense:
			where[i] = int32(t.Slot)
			x.start[t.Slot]++
		default:
			if x.sparse == nil {
				x.sparse = map[slotKey][]*api.Task{}
			}
			k := slotOf(t)
			x.sparse[k] = append(x.sparse[k], t)
		}
	}
	// start[s] = the end of slot s, then, placing the tasks from the last
	// one back, the beginning of slot s.
	for s := 1; s < len(x.start); s++ {
		x.start[s] += x.start[s-1]
	}
	if dense > 0 {
		x.flat = make([]*api.Task, x.start[dense])
	}
	for i := len(tasks) - 1; i >= 0; i-- {
		if s := where[i]; s > 0 {
			x.start[s]--
			x.flat[x.start[s]] = tasks[i]
		}
	}
	return x
}

// slot is the tasks of dense slot s, in the order given; appending to it
// never overwrites another slot's.
func (x *slotIndex) slot(s uint64) []*api.Task {
	begin := x.start[s]
	end := int32(len(x.flat))
	if s+1 < uint64(len(x.start)) {
		end = x.start[s+1]
	}
	return x.flat[begin:end:end]
}

// get is the tasks of slot k (nil when none).
func (x *slotIndex) get(k slotKey) []*api.Task {
	if k.slot >= 1 && k.slot < uint64(len(x.start)) {
		if ts := x.slot(k.slot); len(ts) > 0 {
			return ts
		}
		return nil
	}
	return x.sparse[k]
}

// each calls f for every slot holding tasks: the dense ones in slot order,
// then the others in no particular order.
func (x *slotIndex) each(f func(k slotKey, ts []*api.Task)) {
	for s := uint64(1); s < uint64(len(x.start)); s++ {
		if ts := x.slot(s); len(ts) > 0 {
			f(slotKey{slot: s}, ts)
		}
	}
	for k, ts := range x.sparse {
		f(k, ts)
	}
}
