package worker

import (
	"context"
	"sort"

	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

// applyAssignments applies one message of the assignments stream. A
// COMPLETE message is the whole set: tasks held but not listed are removed,
// and secrets and configs are replaced. INCREMENTAL messages update or
// remove what they name. The db is written (one transaction) before runners
// act, so a restart resumes from what was received, removals included.
func (a *Agent) applyAssignments(msg *api.AssignmentsMessage) {
	complete := msg.GetType() == api.AssignmentsMessage_COMPLETE
	a.mu.Lock()
	defer a.mu.Unlock()
	if complete {
		a.secrets = map[string]*api.Secret{}
		a.configs = map[string]*api.Config{}
	}
	listed := map[string]bool{}
	var upserts []*api.Task
	var removals []string
	for _, ch := range msg.GetChanges() {
		remove := ch.GetAction() == api.AssignmentChange_REMOVE
		switch item := ch.GetAssignment().GetItem().(type) {
		case *api.Assignment_Task:
			t := item.Task
			switch {
			case t.GetId() == "":
				continue
			case t.GetNodeId() != "" && t.GetNodeId() != a.cfg.NodeID:
				a.log.Warn("ignoring a task assigned to another node", "task", t.GetId(), "task_node", t.GetNodeId())
				continue
			case remove:
				removals = append(removals, t.GetId())
			default:
				listed[t.GetId()] = true
				upserts = append(upserts, t)
			}
		case *api.Assignment_Secret:
			if remove {
				delete(a.secrets, item.Secret.GetId())
			} else {
				a.secrets[item.Secret.GetId()] = item.Secret
			}
		case *api.Assignment_Config:
			if remove {
				delete(a.configs, item.Config.GetId())
			} else {
				a.configs[item.Config.GetId()] = item.Config
			}
		}
	}
	if complete {
		for id := range a.runners {
			if !listed[id] {
				removals = append(removals, id)
			}
		}
	}

	var writes []storedTask
	var starts []storedTask
	for _, t := range upserts {
		spec := withoutStatus(t)
		r, ok := a.runners[t.GetId()]
		if !ok {
			st := initialStatus(t)
			writes = append(writes, storedTask{task: spec, status: st})
			starts = append(starts, storedTask{task: spec, status: st})
			continue
		}
		if r.isRemoved() {
			continue // one-shot: a task being removed does not come back
		}
		if !proto.Equal(r.currentTask(), spec) {
			writes = append(writes, storedTask{task: spec})
		}
	}
	var removing []*taskRunner
	for _, id := range removals {
		r, ok := a.runners[id]
		if !ok || r.isRemoved() {
			continue
		}
		t := r.currentTask()
		t.DesiredState = api.TaskState_REMOVE
		writes = append(writes, storedTask{task: t})
		removing = append(removing, r)
	}
	if err := a.db.putTasks(writes); err != nil {
		// The runners still act: the db only matters after a restart,
		// when the next complete set corrects it.
		a.log.Error("recording assignments in the task db", "err", err)
	}

	for _, t := range upserts {
		r, ok := a.runners[t.GetId()]
		if !ok || r.isRemoved() {
			continue
		}
		r.update(withoutStatus(t))
		// A manager behind on this task's status (an update lost with a
		// session, or a restarted agent) gets the latest again.
		if last := r.lastStatus(); last.GetState() >= api.TaskState_ACCEPTED && t.GetStatus().GetState() < last.GetState() {
			a.reporter.enqueue(t.GetId(), last)
		}
	}
	for _, st := range starts {
		a.startRunnerLocked(st.task, st.status, false)
	}
	for _, r := range removing {
		a.log.Info("task no longer assigned: removing it", "task", r.id)
		r.remove()
	}
}

// sweepOrphans removes the containers that belong to no task this agent
// holds: left by a task removed while the agent was down, or by a db that
// was lost. It runs only after a complete set, when "not held" really
// means "not assigned".
func (a *Agent) sweepOrphans(ctx context.Context) {
	c, cancel := context.WithTimeout(ctx, a.cfg.RPCTimeout)
	ids, err := a.cfg.Executor.Tasks(c)
	cancel()
	if err != nil {
		a.log.Warn("listing containers for orphans", "err", err)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	held, orphans := 0, 0
	for _, id := range ids {
		if _, ok := a.runners[id]; ok || id == "" {
			held++
			continue
		}
		orphans++
		a.log.Info("removing orphaned container", "task", id)
		// The runner tears the container down and reports nothing: the
		// managers do not know the task (any more).
		a.startRunnerLocked(&api.Task{Id: id, NodeId: a.cfg.NodeID, DesiredState: api.TaskState_REMOVE}, nil, true)
	}
	if a.rebuilding.CompareAndSwap(true, false) {
		a.log.Info("task db rebuilt from the managers' assignments and containerd's containers",
			"tasks", len(a.runners)-orphans, "containers_kept", held, "orphans_removed", orphans)
	}
}

// withoutStatus returns a copy of t without the manager's view of its
// status: the db and the runner keep the agent's own.
func withoutStatus(t *api.Task) *api.Task {
	c := proto.Clone(t).(*api.Task)
	c.Status = nil
	return c
}

// initialStatus is where the runner of a newly received task starts: the
// manager's status (ASSIGNED for a fresh task; further along when the agent
// lost its db and the manager knows better, so states still only move
// forward).
func initialStatus(t *api.Task) *api.TaskStatus {
	if t.GetStatus() == nil {
		return &api.TaskStatus{State: api.TaskState_ASSIGNED}
	}
	return proto.Clone(t.GetStatus()).(*api.TaskStatus)
}

var _ Dependencies = (*Agent)(nil)

// Secret returns an assigned secret (with its data), for controllers.
func (a *Agent) Secret(id string) (*api.Secret, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.secrets[id]
	return s, ok
}

// Config returns an assigned config, for controllers.
func (a *Agent) Config(id string) (*api.Config, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.configs[id]
	return c, ok
}

// Held lists the IDs of the secrets and configs the agent holds now, sorted.
func (a *Agent) Held() (secrets, configs []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id := range a.secrets {
		secrets = append(secrets, id)
	}
	for id := range a.configs {
		configs = append(configs, id)
	}
	sort.Strings(secrets)
	sort.Strings(configs)
	return secrets, configs
}
