package schedloop

import (
	"sort"

	api "github.com/shoal-project/shoal/proto"
)

// sortTasks orders pending tasks so plans are deterministic: by service,
// spec version, slot, then ID.
func sortTasks(ts []*api.Task) {
	sort.Slice(ts, func(i, j int) bool {
		a, b := ts[i], ts[j]
		if a.ServiceId != b.ServiceId {
			return a.ServiceId < b.ServiceId
		}
		if a.SpecVersion != b.SpecVersion {
			return a.SpecVersion < b.SpecVersion
		}
		if a.Slot != b.Slot {
			return a.Slot < b.Slot
		}
		return a.Id < b.Id
	})
}
