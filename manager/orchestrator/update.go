package orchestrator

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	api "github.com/shoal-project/shoal/proto"
)

// UpdateTaskTimeout is how long a task of a rolling update may take to
// reach RUNNING before it counts as a failure. SwarmKit waits forever, and
// an update then stalls silently behind a task stuck in PENDING; here it
// fails, and the update's failure action applies.
var UpdateTaskTimeout = 3 * time.Minute

// dirtySlot is a slot (or a global service's node) whose task runs an older
// spec than the service's.
type dirtySlot struct {
	slot uint64
	node string
	task *api.Task
}

// rollingUpdate paces the replacement of dirty slots by the update config
// (or the rollback config while rolling back): at most `parallelism` new
// tasks on their way to RUNNING, `delay` after the last one came up, a stop
// of the old task before (stop-first) or after (start-first) its
// replacement runs, and failure handling by `failure_action` once the share
// of failed new tasks exceeds `max_failure_ratio`. Everything it needs is in
// the store (task spec versions, states and timestamps), so a new leader
// resumes an update exactly where the old one left it.
func (r *reconciler) rollingUpdate() {
	svc := r.in.Service
	if svc.Spec.IsJob() {
		// A job's new spec is a new run: its tasks are replaced at once.
		for _, ds := range r.dirty {
			r.setDesired(ds.task, api.TaskState_SHUTDOWN)
			r.create(ds.slot, ds.node, ds.task)
		}
		return
	}
	status := svc.GetUpdateStatus()
	state := status.GetState()
	if state == api.UpdateStatus_PAUSED || state == api.UpdateStatus_ROLLBACK_PAUSED {
		return // until the user updates or rolls back
	}
	inProgress := state == api.UpdateStatus_UPDATING || state == api.UpdateStatus_ROLLBACK_STARTED
	if !inProgress && len(r.dirty) == 0 {
		return
	}
	rollingBack := svc.RolledBack || state == api.UpdateStatus_ROLLBACK_STARTED
	cfg := api.UpdatePolicy(svc.Spec.GetUpdate())
	if rollingBack {
		cfg = api.UpdatePolicy(svc.Spec.GetRollback())
	}
	now := r.in.Now
	monitor := cfg.GetMonitor().AsDuration()

	// The new tasks of this update and what became of them.
	var failed *api.Task
	failures, inflight := 0, 0
	slots := map[slotKey]bool{}
	var lastUp time.Time
	stable := true
	for _, t := range r.in.Tasks {
		if t.SpecVersion != svc.SpecVersion || (status != nil && status.StartedAt != nil && t.GetMeta().GetCreatedAt().AsTime().Before(status.StartedAt.AsTime())) {
			continue
		}
		slots[slotOf(t)] = true
		st := t.GetStatus().GetState()
		switch {
		case st == api.TaskState_RUNNING:
			at := t.GetStatus().GetTimestamp().AsTime()
			if at.After(lastUp) {
				lastUp = at
			}
			if now.Sub(at) < monitor {
				stable = false
				r.out.wake(at.Add(monitor))
			}
		case st < api.TaskState_RUNNING && r.desired(t) <= api.TaskState_RUNNING:
			inflight++
			created := t.GetMeta().GetCreatedAt().AsTime()
			if t.GetMeta().GetCreatedAt() != nil && now.Sub(created) > UpdateTaskTimeout {
				failures++
				if failed == nil {
					failed = t
				}
			} else if t.GetMeta().GetCreatedAt() != nil {
				r.out.wake(created.Add(UpdateTaskTimeout))
			}
		case st == api.TaskState_FAILED || st == api.TaskState_REJECTED ||
			(st == api.TaskState_COMPLETE && !svc.Spec.IsJob()) ||
			(st == api.TaskState_SHUTDOWN && t.DesiredState <= api.TaskState_RUNNING):
			failures++
			if failed == nil {
				failed = t
			}
		}
	}
	total := len(r.dirty) + len(slots)
	if total == 0 {
		return
	}
	if failures > 0 && cfg.FailureAction != api.UpdateConfig_CONTINUE && float32(failures)/float32(total) > cfg.MaxFailureRatio {
		r.updateFailed(failed, rollingBack, cfg)
		return
	}
	if len(r.dirty) == 0 {
		if inflight == 0 && stable {
			next := api.UpdateStatus_COMPLETED
			msg := "update completed"
			if rollingBack {
				next, msg = api.UpdateStatus_ROLLBACK_COMPLETED, "rollback completed"
			}
			r.setUpdateStatus(&api.UpdateStatus{State: next, StartedAt: status.GetStartedAt(), CompletedAt: timestamppb.New(now), Message: msg})
		}
		return
	}
	if state != api.UpdateStatus_UPDATING && state != api.UpdateStatus_ROLLBACK_STARTED {
		r.setUpdateStatus(&api.UpdateStatus{State: api.UpdateStatus_UPDATING, StartedAt: timestamppb.New(now), Message: "update in progress"})
	}
	if d := cfg.GetDelay().AsDuration(); d > 0 && !lastUp.IsZero() && now.Before(lastUp.Add(d)) {
		r.out.wake(lastUp.Add(d))
		return
	}
	room := len(r.dirty)
	if p := int(cfg.Parallelism); p > 0 {
		room = p - inflight
	}
	for i := 0; i < room && i < len(r.dirty); i++ {
		ds := r.dirty[i]
		if cfg.Order == api.UpdateConfig_START_FIRST {
			r.create(ds.slot, ds.node, ds.task)
			continue // the old task stops once this one runs (fillSlot)
		}
		r.setDesired(ds.task, api.TaskState_SHUTDOWN)
		n := r.create(ds.slot, ds.node, ds.task)
		if n.DesiredState == api.TaskState_RUNNING {
			n.DesiredState = api.TaskState_READY // starts once the old one is down
		}
	}
}

// updateFailed applies the failure action: pause, or roll back to the
// previous spec (a failing rollback pauses).
func (r *reconciler) updateFailed(t *api.Task, rollingBack bool, cfg *api.UpdateConfig) {
	svc := r.in.Service
	cause := fmt.Sprintf("task %s", t.GetId())
	if e := t.GetStatus().GetErr(); e != "" {
		cause += ": " + e
	} else if t.GetStatus().GetState() < api.TaskState_RUNNING {
		cause += fmt.Sprintf(": did not reach RUNNING within %v (still %s)", UpdateTaskTimeout, t.GetStatus().GetState())
	}
	now := timestamppb.New(r.in.Now)
	switch {
	case rollingBack:
		r.setUpdateStatus(&api.UpdateStatus{State: api.UpdateStatus_ROLLBACK_PAUSED, StartedAt: svc.GetUpdateStatus().GetStartedAt(),
			Message: "rollback paused due to failure or early termination of " + cause})
	case cfg.FailureAction == api.UpdateConfig_ROLLBACK && svc.PreviousSpec != nil:
		next := r.serviceCopy()
		next.Spec, next.PreviousSpec = proto.Clone(svc.PreviousSpec).(*api.ServiceSpec), proto.Clone(svc.Spec).(*api.ServiceSpec)
		next.PreviousSpecVersion = svc.SpecVersion
		next.SpecVersion = svc.SpecVersion + 1
		next.RolledBack = true
		// A spec write: a user's update read before it is stale.
		next.SpecBaseVersion = svc.GetMeta().GetVersion()
		next.UpdateStatus = &api.UpdateStatus{State: api.UpdateStatus_ROLLBACK_STARTED, StartedAt: now,
			Message: "update rolled back due to failure or early termination of " + cause}
	default:
		r.setUpdateStatus(&api.UpdateStatus{State: api.UpdateStatus_PAUSED, StartedAt: svc.GetUpdateStatus().GetStartedAt(),
			Message: "update paused due to failure or early termination of " + cause})
	}
}

func (r *reconciler) serviceCopy() *api.Service {
	if r.out.Service == nil {
		r.out.Service = proto.Clone(r.in.Service).(*api.Service)
	}
	return r.out.Service
}

func (r *reconciler) setUpdateStatus(s *api.UpdateStatus) {
	r.serviceCopy().UpdateStatus = s
}
