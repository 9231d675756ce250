package worker

import (
	"math"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	api "github.com/shoal-project/shoal/proto"
)

// graceTask is a running task with a stop grace period.
func graceTask(id string, grace *durationpb.Duration) *api.Task {
	t := task(id, api.TaskState_RUNNING)
	t.Spec = &api.TaskSpec{Container: &api.ContainerSpec{Image: "img:1", StopGracePeriod: grace}}
	return t
}

// withDesired is t with another desired state and service_removed.
func withDesired(t *api.Task, desired api.TaskState, serviceRemoved bool) *api.Task {
	c := graceTask(t.GetId(), t.GetSpec().GetContainer().GetStopGracePeriod())
	c.DesiredState, c.ServiceRemoved = desired, serviceRemoved
	return c
}

// TestServiceRemovalCapsTheStopGracePeriod: the containers of a removed
// service get the stop signal and are killed at the latest
// RemovedServiceStopGrace later, whatever their stop grace period, then
// removed. A scale-down (REMOVE without service_removed) and an update
// (SHUTDOWN) keep the full grace period, until the service is removed
// while they wait. Durations too long for time.Duration are clamped, not
// overflowed. Time is the fake clock's.
func TestServiceRemovalCapsTheStopGracePeriod(t *testing.T) {
	const capGrace = time.Second
	h := newHarness(t, 1)
	h.tweak = func(c *Config) { c.RemovedServiceStopGrace = capGrace }
	h.start()
	tasks := map[string]*api.Task{
		"rm":        graceTask("rm", durationpb.New(1000*time.Hour)),
		"scaledown": graceTask("scaledown", &durationpb.Duration{Seconds: math.MaxInt64}), // beyond time.Duration
		"update":    graceTask("update", durationpb.New(1000*time.Hour)),
		"short":     graceTask("short", durationpb.New(capGrace/2)),
	}
	for id, tk := range tasks {
		h.exec.trapTerm[id] = true
		h.cluster.assign(tk)
	}
	for id := range tasks {
		h.waitState(id, api.TaskState_RUNNING)
	}

	// service rm: killed within the cap.
	removedAt := h.clock.Now()
	h.cluster.assign(withDesired(tasks["rm"], api.TaskState_REMOVE, true))
	h.cluster.assign(withDesired(tasks["short"], api.TaskState_REMOVE, true))
	// A scale-down and an update: the stop begins, with the full grace.
	h.cluster.assign(withDesired(tasks["scaledown"], api.TaskState_REMOVE, false))
	h.cluster.assign(withDesired(tasks["update"], api.TaskState_SHUTDOWN, false))

	h.waitFor("the removed service's container gone", func() bool { return !h.exec.has("rm") })
	term, _ := h.exec.when("terminate", "rm")
	sig, _ := h.exec.when("shutdown", "rm")
	if d := term.Sub(removedAt); d < capGrace || d > capGrace+5*time.Second {
		t.Errorf("killed %v after the service's removal, want %v (the cap)", d, capGrace)
	}
	if sig.After(term) || h.exec.count("shutdown-cut-short", "rm") != 1 {
		t.Errorf("not stopped with the signal first: %v", h.exec.callList())
	}
	h.waitState("rm", api.TaskState_SHUTDOWN)

	// A grace period under the cap is the task's own: no kill.
	h.waitFor("the short-grace container gone", func() bool { return !h.exec.has("short") })
	if h.exec.count("grace-expired", "short") != 1 || h.exec.count("terminate", "short") != 0 {
		t.Errorf("short: %v", h.exec.callList())
	}

	// Well past the cap, the scale-down and the update still wait.
	h.waitFor("the clock well past the cap", func() bool { return h.clock.Since(removedAt) > 5*capGrace })
	for _, id := range []string{"scaledown", "update"} {
		if !h.exec.running(id) || h.exec.count("terminate", id) != 0 || h.exec.count("shutdown", id) != 1 {
			t.Fatalf("%s did not keep its full grace period: %v", id, h.exec.callList())
		}
	}

	// Then the service is removed: both go within the cap from then.
	rmAt := h.clock.Now()
	h.cluster.assign(withDesired(tasks["scaledown"], api.TaskState_REMOVE, true))
	h.cluster.assign(withDesired(tasks["update"], api.TaskState_REMOVE, true))
	for _, id := range []string{"scaledown", "update"} {
		h.waitFor(id+" gone", func() bool { return !h.exec.has(id) })
		term, ok := h.exec.when("terminate", id)
		if d := term.Sub(rmAt); !ok || d < capGrace || d > capGrace+5*time.Second {
			t.Errorf("%s killed %v after the service's removal, want %v", id, d, capGrace)
		}
		h.waitState(id, api.TaskState_SHUTDOWN)
		h.checkForward(id)
	}
	if n := slices.Index(h.cluster.states("update"), api.TaskState_SHUTDOWN); n < 0 {
		t.Error("the updated task was not reported SHUTDOWN")
	}
	if ids, _ := h.exec.Tasks(t.Context()); len(ids) != 0 {
		t.Errorf("containers left: %v", ids)
	}
}
