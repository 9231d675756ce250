package manager

import (
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-project/shoal/internal/overload"
	"github.com/shoal-project/shoal/manager/controlapi"
	"github.com/shoal-project/shoal/manager/dispatcher"
	"github.com/shoal-project/shoal/manager/schedloop"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// The manager's metrics (docs/metrics.md). Where dockerd's swarm metrics
// have a name, the same name and labels are kept so dashboards built for
// docker work unchanged; the rest are shoal_*. All are read from the
// store and raft at scrape time: nothing is counted twice or kept in step.
var (
	descLeader = prometheus.NewDesc("swarm_manager_leader",
		"Indicates if this manager node is a leader (1 or 0).", nil, nil)
	descNodes = prometheus.NewDesc("swarm_manager_nodes",
		"The number of nodes in the swarm, by state (ready, down, disconnected, unknown).", []string{"state"}, nil)
	descTasks = prometheus.NewDesc("swarm_manager_tasks_total",
		"The number of tasks in the swarm's store, by state.", []string{"state"}, nil)
	descServices = prometheus.NewDesc("swarm_manager_services_total",
		"The number of services in the swarm.", nil, nil)
	descNetworks = prometheus.NewDesc("swarm_manager_networks_total",
		"The number of networks in the swarm.", nil, nil)
	descSecrets = prometheus.NewDesc("swarm_manager_secrets_total",
		"The number of secrets in the swarm.", nil, nil)
	descConfigs = prometheus.NewDesc("swarm_manager_configs_total",
		"The number of configs in the swarm.", nil, nil)
	descObjects = prometheus.NewDesc("shoal_store_objects",
		"Objects in this manager's store, by kind (node, service, task, network, secret, config, cluster).", []string{"kind"}, nil)
	descRunning = prometheus.NewDesc("shoal_service_replicas_running",
		"Running tasks of a service, as `shoal service ls` counts them.", []string{"service_id", "service_name"}, nil)
	descDesired = prometheus.NewDesc("shoal_service_replicas_desired",
		"Desired tasks of a service, as `shoal service ls` counts them.", []string{"service_id", "service_name"}, nil)
	descUpdated = prometheus.NewDesc("shoal_service_replicas_updated",
		"Running tasks of a service at its current spec version: an update's progress (against shoal_service_replicas_desired).", []string{"service_id", "service_name"}, nil)
	descUpdate = prometheus.NewDesc("shoal_service_update_state",
		"1 for a service's current update state (updating, paused, completed, rollback_started, rollback_paused, rollback_completed); absent when it never updated.",
		[]string{"service_id", "service_name", "state"}, nil)
	descSessions = prometheus.NewDesc("shoal_dispatcher_sessions",
		"Agent sessions open on this manager's dispatcher (the leader's; 0 on followers).", nil, nil)
	descSessionsOpened = prometheus.NewDesc("shoal_dispatcher_sessions_opened_total",
		"Agent sessions this manager's dispatchers opened.", nil, nil)
	descHeartbeats = prometheus.NewDesc("shoal_dispatcher_heartbeats_total",
		"Agent heartbeats this manager's dispatchers received.", nil, nil)
	descHeld = prometheus.NewDesc("shoal_dispatcher_nodes_held_total",
		"Times a node that missed its heartbeats was held instead of marked down, because most nodes missed theirs at once (a failover's reconnect storm, not a dying cluster).", nil, nil)
	descRelays = prometheus.NewDesc("shoal_dispatcher_heartbeat_relays_total",
		"Calls in which this manager relayed its agents' heartbeats to the leader (a follower's; each carries a window's heartbeats).", nil, nil)
	descHeldCalls = prometheus.NewDesc("shoal_manager_calls_held_for_election_total",
		"Calls for the leader this manager held while an election was under way instead of failing them with \"no leader\", or sent again to the next leader after the leader could not be reached.", nil, nil)
	descShed = prometheus.NewDesc("shoal_manager_connections_refused_total",
		"New TLS connections this manager refused, right after their ClientHello, because its goroutines waited too long for a processor (overload) or, agents' connections, because it was still reading its raft snapshot and log; connections from other managers are never refused.", nil, nil)
	descSchedWait = prometheus.NewDesc("shoal_manager_sched_wait_seconds",
		"90th percentile of how long this manager's runnable goroutines waited for a processor, over its last sample window (what decides the refusals of new connections).", nil, nil)
	descRelayed = prometheus.NewDesc("shoal_dispatcher_heartbeats_relayed_total",
		"Agent heartbeats this manager relayed to the leader.", nil, nil)
	descRelaySeconds = prometheus.NewDesc("shoal_dispatcher_heartbeat_relay_seconds",
		"Round trip of this follower's calls that relay agents' heartbeats to the leader, failed ones included.", nil, nil)
	descHeartbeatsMissed = prometheus.NewDesc("shoal_dispatcher_heartbeat_failures_total",
		"Times a node missed its heartbeats and this manager's dispatcher marked it down.", nil, nil)
	descCommit = prometheus.NewDesc("shoal_raft_commit_index",
		"The highest raft index this manager knows committed.", nil, nil)
	descProposal = prometheus.NewDesc("shoal_raft_proposal_seconds",
		"Time from a write's proposal to its entry applied on this manager (the leader's writes).", nil, nil)
	descSnapshot = prometheus.NewDesc("shoal_raft_snapshot_seconds",
		"Time to encode and save a raft snapshot of the store.", nil, nil)
	descSnapshotBytes = prometheus.NewDesc("shoal_raft_snapshot_bytes",
		"Size of the last raft snapshot this manager took (0 before the first).", nil, nil)
	descPlacements = prometheus.NewDesc("shoal_scheduler_placements_total",
		"Task placements this manager's scheduler committed.", nil, nil)
	descPlaceTx = prometheus.NewDesc("shoal_scheduler_transactions_total",
		"Raft transactions that committed placements (placements / transactions is the batch size).", nil, nil)
	descPass = prometheus.NewDesc("shoal_scheduler_pass_seconds",
		"Time of one scheduling pass: planning and committing its placements.", nil, nil)
	descUnplaceable = prometheus.NewDesc("shoal_scheduler_unplaceable_tasks",
		"Pending tasks the scheduler could not place, by cause (resources, constraints, platform, host-port, max-replicas, node-not-ready, node-availability, no-nodes, node-gone, invalid-spec); on the leader.",
		[]string{"reason"}, nil)
	descTerm = prometheus.NewDesc("shoal_raft_term",
		"This manager's current raft term.", nil, nil)
	descApplied = prometheus.NewDesc("shoal_raft_applied_index",
		"The last raft index applied to this manager's store.", nil, nil)
	descLeaderChanges = prometheus.NewDesc("shoal_raft_leader_changes_total",
		"Leaders this manager has seen take over since it started.", nil, nil)
	descHasLeader = prometheus.NewDesc("shoal_raft_has_leader",
		"1 when this manager knows a raft leader, else 0.", nil, nil)
	descMembers = prometheus.NewDesc("shoal_raft_members",
		"Raft members as this manager sees them, by reachability.", []string{"reachable"}, nil)
	descDiskFault = prometheus.NewDesc("shoal_raft_disk_fault",
		"1 while this manager cannot write its raft log, else 0.", nil, nil)
)

// raftView is what the metrics read of the manager's raft member.
type raftView interface {
	IsLeader() bool
	Term() uint64
	AppliedIndex() uint64
	Leader() uint64
	LeaderChanges() uint64
	DiskFault() *raftstore.DiskFaultError
	Members() []raftstore.MemberStatus
	Stats() raftstore.Stats
}

// collector exports the manager's metrics.
type collector struct {
	raft     raftView
	store    *raftstore.Store
	dispatch *dispatcher.Metrics
	sched    *schedloop.Metrics
	// sessions is the number of agent sessions open (-1: not the leader).
	sessions func() int
	relay    *heartbeatRelay
	// heldCalls counts the calls held for an election (nil: none kept).
	heldCalls *atomic.Uint64
	// shed reads the refusals of new connections (nil: not counted).
	shed func() overload.Stats
}

// Collector returns the manager's metrics collector: each scrape reads
// raft's state and the store once.
func (m *Manager) Collector() prometheus.Collector {
	return collector{raft: m.node, store: m.store, dispatch: &m.dispatcherMetrics, sched: &m.schedMetrics, relay: m.relay, heldCalls: &m.heldCalls, shed: m.shedStats, sessions: func() int {
		if d := m.currentDispatcher(); d != nil {
			return d.OpenSessions()
		}
		return -1
	}}
}

// Describe implements prometheus.Collector.
func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLeader, descNodes, descTasks, descServices, descNetworks, descSecrets,
		descConfigs, descObjects, descRunning, descDesired, descUpdated, descUpdate, descSessions, descSessionsOpened, descHeartbeats, descRelays, descRelayed, descRelaySeconds, descHeartbeatsMissed, descHeld, descPlacements, descPlaceTx, descPass, descUnplaceable, descTerm, descApplied, descCommit, descProposal, descSnapshot, descSnapshotBytes, descLeaderChanges, descHasLeader, descMembers, descDiskFault, descHeldCalls, descShed, descSchedWait} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	n := c.raft
	gauge(descLeader, b2f(n.IsLeader()))
	gauge(descTerm, float64(n.Term()))
	gauge(descApplied, float64(n.AppliedIndex()))
	st := n.Stats()
	gauge(descCommit, float64(st.CommitIndex))
	gauge(descSnapshotBytes, float64(st.SnapshotBytes))
	for d, h := range map[*prometheus.Desc]raftstore.HistogramSnapshot{descProposal: st.Proposals, descSnapshot: st.Snapshots} {
		ch <- prometheus.MustNewConstHistogram(d, h.Count, h.Sum.Seconds(), h.Buckets)
	}
	gauge(descHasLeader, b2f(n.Leader() != 0))
	ch <- prometheus.MustNewConstMetric(descLeaderChanges, prometheus.CounterValue, float64(n.LeaderChanges()))
	gauge(descDiskFault, b2f(n.DiskFault() != nil))
	if c.heldCalls != nil {
		ch <- prometheus.MustNewConstMetric(descHeldCalls, prometheus.CounterValue, float64(c.heldCalls.Load()))
	}
	if c.shed != nil {
		st := c.shed()
		ch <- prometheus.MustNewConstMetric(descShed, prometheus.CounterValue, float64(st.Shed))
		gauge(descSchedWait, st.Wait.Seconds())
	}
	if c.dispatch != nil {
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
		}
		gauge(descSessions, float64(max(c.sessions(), 0)))
		counter(descSessionsOpened, c.dispatch.Sessions())
		counter(descHeartbeats, c.dispatch.Heartbeats())
		counter(descHeartbeatsMissed, c.dispatch.Expired())
		counter(descHeld, c.dispatch.Held())
		if c.relay != nil {
			counter(descRelays, c.relay.relays.Load())
			counter(descRelayed, c.relay.relayed.Load())
			h := c.relay.latency.Snapshot()
			ch <- prometheus.MustNewConstHistogram(descRelaySeconds, h.Count, h.Sum.Seconds(), h.Buckets)
		}
	}
	if c.sched != nil {
		s := c.sched.Snapshot()
		ch <- prometheus.MustNewConstMetric(descPlacements, prometheus.CounterValue, float64(s.Placements))
		ch <- prometheus.MustNewConstMetric(descPlaceTx, prometheus.CounterValue, float64(s.Transactions))
		ch <- prometheus.MustNewConstHistogram(descPass, s.Passes.Count, s.Passes.Sum.Seconds(), s.Passes.Buckets)
		for cause, n := range s.Unplaced {
			gauge(descUnplaceable, float64(n), cause)
		}
	}
	reach := map[bool]int{true: 0, false: 0}
	for _, mem := range n.Members() {
		reach[mem.Reachable]++
	}
	gauge(descMembers, float64(reach[true]), "true")
	gauge(descMembers, float64(reach[false]), "false")

	c.store.View(func(tx raftstore.ReadTx) {
		nodes := map[string]int{}
		for _, s := range []api.NodeStatus_State{api.NodeStatus_READY, api.NodeStatus_DOWN, api.NodeStatus_DISCONNECTED, api.NodeStatus_UNKNOWN} {
			nodes[stateName(s.String())] = 0
		}
		allNodes := tx.Nodes()
		nodeCount := len(allNodes)
		for _, nd := range allNodes {
			nodes[stateName(nd.GetStatus().GetState().String())]++
		}
		for s, n := range nodes {
			gauge(descNodes, float64(n), s)
		}
		tasks := map[string]int{}
		for _, s := range api.TaskState_name {
			tasks[stateName(s)] = 0
		}
		for _, t := range tx.Tasks() {
			tasks[stateName(t.GetStatus().GetState().String())]++
		}
		for s, n := range tasks {
			gauge(descTasks, float64(n), s)
		}
		services, networks, secrets, configs := tx.Services(), tx.Networks(), tx.Secrets(), tx.Configs()
		gauge(descServices, float64(len(services)))
		gauge(descNetworks, float64(len(networks)))
		gauge(descSecrets, float64(len(secrets)))
		gauge(descConfigs, float64(len(configs)))
		ntasks := 0
		for _, n := range tasks {
			ntasks += n
		}
		for kind, n := range map[string]int{"node": nodeCount, "service": len(services), "task": ntasks,
			"network": len(networks), "secret": len(secrets), "config": len(configs), "cluster": len(tx.Clusters())} {
			gauge(descObjects, float64(n), kind)
		}
		for _, svc := range services {
			name := svc.GetSpec().GetAnnotations().GetName()
			counts := controlapi.CountTasks(tx, svc)
			gauge(descRunning, float64(counts.GetRunning()), svc.Id, name)
			gauge(descDesired, float64(counts.GetDesired()), svc.Id, name)
			updated := 0
			for _, t := range tx.TasksByService(svc.Id) {
				if t.SpecVersion == svc.SpecVersion && t.DesiredState <= api.TaskState_RUNNING && t.GetStatus().GetState() == api.TaskState_RUNNING {
					updated++
				}
			}
			gauge(descUpdated, float64(updated), svc.Id, name)
			if us := svc.GetUpdateStatus(); us != nil && us.GetState() != api.UpdateStatus_UNKNOWN {
				gauge(descUpdate, 1, svc.Id, name, stateName(us.GetState().String()))
			}
		}
	})
}

// stateName is a proto enum name as the CLI and docker print it.
func stateName(s string) string { return strings.ToLower(s) }
