package api

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
)

// Defaults of specs, applied where a field is unset. They match Docker swarm
// mode's, so a spec written for Docker behaves the same.
const (
	DefaultRestartDelay     = 5 * time.Second
	DefaultStopGracePeriod  = 10 * time.Second
	DefaultUpdateMonitor    = 5 * time.Second
	DefaultHeartbeatPeriod  = 5 * time.Second
	DefaultTaskHistory      = 5
	DefaultHealthInterval   = 30 * time.Second
	DefaultHealthTimeout    = 30 * time.Second
	DefaultHealthRetries    = 3
	DefaultNodeCertExpiry   = 90 * 24 * time.Hour
	DefaultSnapshotInterval = 10000
	// Raft ticks (of 100 ms) between leader heartbeats and before an
	// election, as every manager runs them. The election timeout is 3 s
	// (randomized by raft to [3 s, 6 s)): a manager whose process stalls
	// for a second (a garbage collection of a large heap, CPU starvation
	// under a reconnect storm) keeps its leadership, where a 1 s timeout
	// turned each such stall at 1M tasks into a leader change and a
	// reconnect storm of its own. A killed leader is still replaced within
	// about a second: its broken connections make the followers forget it
	// after three heartbeat ticks (raftstore's leader-unreachable path),
	// without waiting for the timeout. Swarm's is 10 s (10 ticks of 1 s).
	DefaultHeartbeatTick = 1
	DefaultElectionTick  = 30
)

// Dur reads an optional duration, def when unset.
func Dur(d *durationpb.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.AsDuration()
}

// Restart returns the task's restart policy with defaults filled in:
// condition any, delay 5s, unlimited attempts, no window.
func (t *TaskSpec) RestartPolicy() *RestartPolicy {
	p := &RestartPolicy{Condition: RestartPolicy_ANY, Delay: durationpb.New(DefaultRestartDelay)}
	if r := t.GetRestart(); r != nil {
		p.Condition = r.Condition
		p.MaxAttempts = r.MaxAttempts
		p.Window = r.Window
		if r.Delay != nil {
			p.Delay = r.Delay
		}
	}
	return p
}

// UpdatePolicy returns the update (or rollback) config with defaults:
// parallelism 1, delay 0, pause on failure, monitor 5s, ratio 0, stop-first.
func UpdatePolicy(c *UpdateConfig) *UpdateConfig {
	if c == nil {
		return &UpdateConfig{Parallelism: 1, Monitor: durationpb.New(DefaultUpdateMonitor)}
	}
	out := &UpdateConfig{
		Parallelism:     c.Parallelism,
		Delay:           c.Delay,
		FailureAction:   c.FailureAction,
		Monitor:         c.Monitor,
		MaxFailureRatio: c.MaxFailureRatio,
		Order:           c.Order,
	}
	if out.Monitor == nil {
		out.Monitor = durationpb.New(DefaultUpdateMonitor)
	}
	return out
}

// IsReplicated reports whether a spec is in replicated or replicated-job
// mode, the modes that have slots.
func (s *ServiceSpec) IsReplicated() bool {
	return s.GetReplicated() != nil || s.GetReplicatedJob() != nil
}

// IsGlobal reports whether a spec is global or global-job.
func (s *ServiceSpec) IsGlobal() bool { return s.GetGlobal() != nil || s.GetGlobalJob() != nil }

// IsJob reports whether a spec is one of the job modes.
func (s *ServiceSpec) IsJob() bool { return s.GetReplicatedJob() != nil || s.GetGlobalJob() != nil }

// ModeName is the mode as `service ls` prints it.
func (s *ServiceSpec) ModeName() string {
	switch {
	case s.GetGlobal() != nil:
		return "global"
	case s.GetReplicatedJob() != nil:
		return "replicated job"
	case s.GetGlobalJob() != nil:
		return "global job"
	}
	return "replicated"
}

// Terminal reports whether a task state is final: the task will not run
// (again).
func (s TaskState) Terminal() bool { return s >= TaskState_COMPLETE }
