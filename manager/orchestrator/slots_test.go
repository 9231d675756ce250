package orchestrator

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"

	api "github.com/shoal-project/shoal/proto"
)

// The slot index groups like a map of slices built in the tasks' order:
// random slots (dense, beyond the number of tasks, 0 with a node), some
// tasks dropped by keep.
func TestSlotIndexAgainstAMap(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for round := 0; round < 200; round++ {
		n := r.Intn(60)
		var tasks []*api.Task
		for i := 0; i < n; i++ {
			var slot uint64
			switch r.Intn(4) {
			case 0:
				slot = 0 // a global service's: keyed by node
			case 1:
				slot = uint64(n + 1 + r.Intn(1000)) // beyond the dense range
			default:
				slot = uint64(1 + r.Intn(max(n/2, 1)))
			}
			tasks = append(tasks, &api.Task{Id: fmt.Sprintf("t%d", i), Slot: slot, NodeId: fmt.Sprintf("n%d", r.Intn(3))})
		}
		drop := map[string]bool{}
		for _, tk := range tasks {
			if r.Intn(5) == 0 {
				drop[tk.Id] = true
			}
		}
		calls := 0
		x := indexSlots(tasks, func(tk *api.Task) bool { calls++; return !drop[tk.Id] })
		if calls != len(tasks) {
			t.Fatalf("keep called %d times for %d tasks", calls, len(tasks))
		}
		want := map[slotKey][]*api.Task{}
		for _, tk := range tasks {
			if !drop[tk.Id] {
				want[slotOf(tk)] = append(want[slotOf(tk)], tk)
			}
		}
		got := map[slotKey][]*api.Task{}
		x.each(func(k slotKey, ts []*api.Task) {
			if _, dup := got[k]; dup {
				t.Fatalf("round %d: slot %v visited twice", round, k)
			}
			got[k] = ts
		})
		if len(got) != len(want) {
			t.Fatalf("round %d: %d slots, want %d", round, len(got), len(want))
		}
		for k, ts := range want {
			if !slices.Equal(got[k], ts) || !slices.Equal(x.get(k), ts) {
				t.Fatalf("round %d: slot %v holds %v (get %v), want %v", round, k, taskIDs(got[k]), taskIDs(x.get(k)), taskIDs(ts))
			}
		}
		if x.get(slotKey{slot: 5000}) != nil || x.get(slotKey{node: "nope"}) != nil {
			t.Fatalf("round %d: an empty slot holds tasks", round)
		}
		if len(x.start) > len(tasks)+1 {
			t.Fatalf("round %d: %d dense slots for %d tasks", round, len(x.start)-1, len(tasks))
		}
		// A slot's slice cannot grow into the next slot's tasks.
		x.each(func(k slotKey, ts []*api.Task) {
			_ = append(ts, &api.Task{Id: "extra"})
		})
		for k, ts := range want {
			if !slices.Equal(x.get(k), ts) {
				t.Fatalf("round %d: appending to a slot changed slot %v", round, k)
			}
		}
	}
}

func taskIDs(ts []*api.Task) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Id)
	}
	return out
}
