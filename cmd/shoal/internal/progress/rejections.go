package progress

import (
	"fmt"
	"strconv"

	api "github.com/shoal-project/shoal/proto"
)

// rejections notices a service that cannot start at all: every slot's
// tasks are rejected for one and the same reason (an image that does not
// exist, a secret a node cannot read), and none runs. Waiting for the stall
// timeout would only repeat that reason for ten minutes.
//
// One transient failure must not end the wait: a registry that blinks can
// reject every slot's first task at once. So beyond every slot rejected at
// least once, one retry must have been rejected for the same reason too
// (when the restart policy retries at all).
type rejections struct {
	counted map[string]bool   // task IDs already counted
	last    map[string]string // slot -> reason of its latest rejection
	total   map[string]int    // reason -> rejections
}

func newRejections() *rejections {
	return &rejections{counted: map[string]bool{}, last: map[string]string{}, total: map[string]int{}}
}

func slotKey(t *api.Task) string {
	if t.GetSlot() != 0 {
		return strconv.FormatUint(t.GetSlot(), 10)
	}
	return "node " + t.GetNodeId()
}

// observe records the rejections among tasks (those of the current spec)
// and returns the common reason when the service cannot start: every
// expected slot rejected for it, one retry too, and no task running or
// starting.
func (r *rejections) observe(svc *api.Service, tasks []*api.Task) (string, bool) {
	slots := map[string]bool{}
	for _, t := range tasks {
		slots[slotKey(t)] = true
		st := t.GetStatus()
		if st.GetState() == api.TaskState_RUNNING || st.GetState() == api.TaskState_STARTING {
			// Something starts: not a service that cannot start.
			return "", false
		}
		if st.GetState() != api.TaskState_REJECTED || st.GetErr() == "" || r.counted[t.GetId()] {
			continue
		}
		r.counted[t.GetId()] = true
		r.last[slotKey(t)] = st.GetErr()
		r.total[st.GetErr()]++
	}
	expected := len(slots)
	if n := svc.GetSpec().GetReplicated().GetReplicas(); n > 0 {
		expected = int(n)
	}
	if expected == 0 || len(r.last) < expected {
		return "", false
	}
	reason := ""
	for slot := range slots {
		why, ok := r.last[slot]
		if !ok || reason != "" && why != reason {
			return "", false
		}
		reason = why
	}
	needed := expected + 1 // one retry rejected the same way
	if svc.GetSpec().GetTask().GetRestart().GetCondition() == api.RestartPolicy_NONE && svc.GetSpec().GetTask().GetRestart() != nil {
		needed = expected // no retry will come
	}
	if reason == "" || r.total[reason] < needed {
		return "", false
	}
	return reason, true
}

// rejectedError ends the display of a service that cannot start.
func rejectedError(name, cli, reason string, n int) error {
	return fmt.Errorf("service %s cannot start: its tasks were rejected %d times, every time for the same reason:\n%s\n"+
		"The service stays as it is: fix the cause and `%s service update --force %s`, or remove it with `%s service rm %s`.",
		name, n, reason, cli, name, cli, name)
}
