package progress

import (
	"fmt"
	"sort"
	"strings"

	api "github.com/shoal-project/shoal/proto"
)

// numbered places task states on the progress bar; 9 (running) is full.
// The gap at 2 is Docker's "allocated", which shoal folds into pending.
var numbered = map[api.TaskState]int64{
	api.TaskState_NEW:       1,
	api.TaskState_PENDING:   3,
	api.TaskState_ASSIGNED:  4,
	api.TaskState_ACCEPTED:  5,
	api.TaskState_PREPARING: 6,
	api.TaskState_READY:     7,
	api.TaskState_STARTING:  8,
	api.TaskState_RUNNING:   9,
	api.TaskState_COMPLETE:  10,
	api.TaskState_SHUTDOWN:  11,
	api.TaskState_FAILED:    12,
	api.TaskState_REJECTED:  13,
}

const (
	maxProgress     = 9
	maxJobProgress  = 10
	maxProgressBars = 20
	// longestState is the width of the longest state shown ("preparing").
	longestState = 9
	// maxErrWidth keeps an error on one line of a narrow terminal.
	maxErrWidth = 75
)

func terminal(s api.TaskState) bool { return numbered[s] > numbered[api.TaskState_RUNNING] }

func known(t *api.Task) bool {
	return numbered[t.GetDesiredState()] != 0 && numbered[t.GetStatus().GetState()] != 0
}

func stateWord(s api.TaskState) string {
	return fmt.Sprintf("%-*s", longestState, strings.ToLower(s.String()))
}

// truncError keeps a task error on one line.
func truncError(msg string) string {
	msg = strings.ReplaceAll(msg, "\n", " ")
	if r := []rune(msg); len(r) > maxErrWidth {
		msg = string(r[:maxErrWidth-1]) + "…"
	}
	return msg
}

// prefer tells whether task b should stand for its slot (or node) instead of
// a: the lowest desired state wins (restarts), then the lowest observed state
// (start-first updates), as in Docker.
func prefer(a, b *api.Task) bool {
	da, db := numbered[a.GetDesiredState()], numbered[b.GetDesiredState()]
	if da != db {
		return db < da
	}
	return numbered[b.GetStatus().GetState()] < numbered[a.GetStatus().GetState()]
}

func sortedSlots(m map[uint64]*api.Task) []uint64 {
	keys := make([]uint64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}

func sortedNodes(m map[string]*api.Task) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
