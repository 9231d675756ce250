package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/shoal-project/shoal/metrics"
)

// newRegistry is the node's metrics registry: the Go runtime and process
// collectors and the node's own, which reads the member of the moment
// (its manager and agent come and go with role changes).
func (n *Node) newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), nodeCollector{n}, n.grpcMetrics)
	return reg
}

// newGRPCMetrics counts and times the calls the cluster API serves
// (grpc_server_handled_total, grpc_server_handling_seconds, by service,
// method and code), across the members the node runs in turn.
func newGRPCMetrics() *grpcprom.ServerMetrics {
	return grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
		grpcprom.WithHistogramBuckets([]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30})))
}

// Registry is the registry --metrics-addr serves (tests read it directly).
func (n *Node) Registry() *prometheus.Registry { return n.registry }

var (
	descNodeInfo = prometheus.NewDesc("swarm_node_info",
		"Information about the swarm membership of this node (value 1).", []string{"node_id", "swarm_id"}, nil)
	descNodeManager = prometheus.NewDesc("swarm_node_manager",
		"Whether this node is a manager (1) or not (0).", nil, nil)
	descNodeInfoShoal = prometheus.NewDesc("shoal_node_info",
		"The shoald version and this node's swarm state (value 1).", []string{"version", "state"}, nil)
)

// metricsCollector is an executor with metrics of its own (the containerd
// executor: per-task CPU, memory, network and image pulls).
type metricsCollector interface {
	Collector() prometheus.Collector
}

// nodeCollector is unchecked (Describe sends nothing): what it exports
// depends on the node's role at the scrape.
type nodeCollector struct{ n *Node }

func (nodeCollector) Describe(chan<- *prometheus.Desc) {}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	info := c.n.Info()
	ch <- prometheus.MustNewConstMetric(descNodeInfoShoal, prometheus.GaugeValue, 1, c.n.cfg.Version, stateName(info.GetState().String()))
	mb := c.n.current()
	if mb == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descNodeInfo, prometheus.GaugeValue, 1, mb.identity.NodeID, mb.identity.ClusterID)
	mgr := 0.0
	if mb.manager != nil {
		mgr = 1
		mb.manager.Collector().Collect(ch)
	}
	ch <- prometheus.MustNewConstMetric(descNodeManager, prometheus.GaugeValue, mgr)
	mb.agentMu.Lock()
	agent, exec := mb.agent, mb.exec
	mb.agentMu.Unlock()
	if agent != nil {
		agent.Collect(ch)
	}
	if mc, ok := exec.(metricsCollector); ok {
		mc.Collector().Collect(ch)
	}
}

// readyz is /readyz: a manager is ready when a linearizable read through
// raft succeeds (there is a leader, and this manager has applied what the
// leader had committed), an agent-only node when it has a session.
func (n *Node) readyz(ctx context.Context) error {
	mb := n.current()
	if mb == nil {
		return n.outsideErr()
	}
	if m := mb.manager; m != nil {
		if df := m.Raft().DiskFault(); df != nil {
			return df
		}
		if err := m.Raft().LinearizableRead(ctx); err != nil {
			return fmt.Errorf("manager not caught up with a leader: %w", err)
		}
		return nil
	}
	mb.agentMu.Lock()
	agent := mb.agent
	mb.agentMu.Unlock()
	if agent == nil || !agent.Connected() {
		return errors.New("the agent has no session with a manager")
	}
	return nil
}

// startMetrics serves Config.MetricsAddr, if set; stop closes it.
func (n *Node) startMetrics() (stop func(), err error) {
	if n.cfg.MetricsAddr == "" {
		return func() {}, nil
	}
	s, err := metrics.Listen(metrics.Config{Addr: n.cfg.MetricsAddr, Gatherer: n.registry, Ready: n.readyz, Log: n.log})
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	n.log.Info("serving metrics, /healthz and /readyz", "addr", s.Addr())
	n.mu.Lock()
	n.metricsAddr = s.Addr()
	n.mu.Unlock()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	}, nil
}

// MetricsAddr is the address the metrics server listens on, "" when off.
func (n *Node) MetricsAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.metricsAddr
}

// stateName is an enum name as the CLI prints it.
func stateName(s string) string { return strings.ToLower(s) }
