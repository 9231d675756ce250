package worker

import (
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	api "github.com/shoal-project/shoal/proto"
)

// agentMetrics are the agent's own counters (docs/metrics.md); task counts
// by state are read from the runners at scrape time.
type agentMetrics struct {
	// session is the manager address of the open session, "" for none.
	session           atomic.Pointer[string]
	sessions          prometheus.Counter
	heartbeatFailures prometheus.Counter
	// startSeconds observes ACCEPTED -> RUNNING per task: preparing
	// (image pull, networks, mounts) and starting.
	startSeconds prometheus.Histogram
}

var (
	descAgentSession = prometheus.NewDesc("shoal_agent_session",
		"1 while the agent has a session with a manager, else 0.", nil, nil)
	descAgentTasks = prometheus.NewDesc("shoal_agent_tasks",
		"Tasks assigned to this node, by the state the agent last reported.", []string{"state"}, nil)
)

func newAgentMetrics() *agentMetrics {
	m := &agentMetrics{
		sessions: prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_agent_sessions_total",
			Help: "Sessions this agent opened with a manager."}),
		heartbeatFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_agent_heartbeats_failed_total",
			Help: "Heartbeats to a manager that failed."}),
		startSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "shoal_agent_task_start_seconds",
			Help:    "Time from a task's acceptance by this agent to RUNNING (image pull, networks, mounts, start).",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}}),
	}
	none := ""
	m.session.Store(&none)
	return m
}

// Describe implements prometheus.Collector.
func (a *Agent) Describe(ch chan<- *prometheus.Desc) {
	ch <- descAgentSession
	ch <- descAgentTasks
	a.metrics.sessions.Describe(ch)
	a.metrics.heartbeatFailures.Describe(ch)
	a.metrics.startSeconds.Describe(ch)
}

// Collect implements prometheus.Collector.
func (a *Agent) Collect(ch chan<- prometheus.Metric) {
	up := 0.0
	if a.Connected() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descAgentSession, prometheus.GaugeValue, up)
	counts := map[string]int{}
	for _, s := range []api.TaskState{api.TaskState_ASSIGNED, api.TaskState_ACCEPTED, api.TaskState_PREPARING,
		api.TaskState_READY, api.TaskState_STARTING, api.TaskState_RUNNING, api.TaskState_COMPLETE,
		api.TaskState_SHUTDOWN, api.TaskState_FAILED, api.TaskState_REJECTED} {
		counts[strings.ToLower(s.String())] = 0
	}
	a.mu.Lock()
	runners := make([]*taskRunner, 0, len(a.runners))
	for _, r := range a.runners {
		runners = append(runners, r)
	}
	a.mu.Unlock()
	for _, r := range runners {
		counts[strings.ToLower(r.lastStatus().GetState().String())]++
	}
	for s, c := range counts {
		ch <- prometheus.MustNewConstMetric(descAgentTasks, prometheus.GaugeValue, float64(c), s)
	}
	a.metrics.sessions.Collect(ch)
	a.metrics.heartbeatFailures.Collect(ch)
	a.metrics.startSeconds.Collect(ch)
}

// Connected reports whether the agent has a session with a manager.
func (a *Agent) Connected() bool { return *a.metrics.session.Load() != "" }

// SessionManager is the address of the manager the agent has a session
// with, "" when none.
func (a *Agent) SessionManager() string { return *a.metrics.session.Load() }
