package node

import (
	"fmt"

	"strings"
	"testing"

	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
)

// hasLines checks that every want line is in the exposition text.
func hasLines(body string, want ...string) error {
	lines := map[string]bool{}
	for _, l := range strings.Split(body, "\n") {
		lines[l] = true
	}
	for _, w := range want {
		if !lines[w] {
			return fmt.Errorf("no line %q", w)
		}
	}
	return nil
}

// --metrics-addr serves /healthz at once, /readyz once the node is in a
// swarm with a leader (a worker: once it has a session), and /metrics
// with the manager's and the agent's metrics under docker's names.
func TestMetricsHealthAndReadiness(t *testing.T) {
	withMetrics := func(c *Config) { c.MetricsAddr = "127.0.0.1:0" }
	n1 := startNodeWith(t, t.TempDir(), freeAddr(t), newFakeExec(), withMetrics)
	base := "http://" + n1.n.MetricsAddr()
	if code, body, err := testutil.HTTPGet(base + "/healthz"); err != nil || code != 200 {
		t.Fatalf("/healthz outside a swarm: %d %q %v", code, body, err)
	}
	if code, body, err := testutil.HTTPGet(base + "/readyz"); err != nil || code != 503 || !strings.Contains(body, "not part of a swarm") {
		t.Fatalf("/readyz outside a swarm: %d %q %v", code, body, err)
	}
	init := initSwarm(t, n1)
	eventually(t, "the manager is ready", func() error {
		code, body, err := testutil.HTTPGet(base + "/readyz")
		if err != nil || code != 200 {
			return fmt.Errorf("/readyz: %d %q %v", code, body, err)
		}
		return nil
	})
	eventually(t, "the manager's metrics", func() error {
		_, body, err := testutil.HTTPGet(base + "/metrics")
		if err != nil {
			return err
		}
		return hasLines(body,
			"swarm_manager_leader 1",
			"swarm_node_manager 1",
			`swarm_manager_nodes{state="ready"} 1`,
			"swarm_manager_services_total 0",
			"shoal_raft_has_leader 1",
			"shoal_raft_leader_changes_total 1",
			`shoal_raft_members{reachable="true"} 1`,
			"shoal_agent_session 1",
			"shoal_dispatcher_sessions 1",
			fmt.Sprintf(`swarm_node_info{node_id=%q,swarm_id=%q} 1`, init.GetNodeId(), init.GetClusterId()),
		)
	})

	// The cluster API's calls are counted and timed by service and method.
	if _, err := n1.control.ListNodes(n1.ctx(), &api.ListNodesRequest{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ListNodes counted", func() error {
		_, body, err := testutil.HTTPGet(base + "/metrics")
		if err != nil {
			return err
		}
		if !strings.Contains(body, `grpc_server_handled_total{grpc_code="OK",grpc_method="ListNodes",grpc_service="shoal.v1.Control",grpc_type="unary"} `) ||
			!strings.Contains(body, `grpc_server_handling_seconds_count{grpc_method="ListNodes",grpc_service="shoal.v1.Control",grpc_type="unary"} `) {
			return fmt.Errorf("no grpc_server metrics of ListNodes")
		}
		return nil
	})

	n2 := startNodeWith(t, t.TempDir(), freeAddr(t), newFakeExec(), withMetrics)
	base2 := "http://" + n2.n.MetricsAddr()
	if _, err := n2.local.Join(n2.ctx(), &api.JoinRequest{RemoteAddr: n1.addr, JoinToken: init.GetWorkerToken(),
		ListenAddr: n2.addr, AdvertiseAddr: n2.addr}); err != nil {
		t.Fatalf("Join: %v", err)
	}
	eventually(t, "the worker is ready", func() error {
		code, body, err := testutil.HTTPGet(base2 + "/readyz")
		if err != nil || code != 200 {
			return fmt.Errorf("/readyz: %d %q %v", code, body, err)
		}
		_, body, err = testutil.HTTPGet(base2 + "/metrics")
		if err != nil {
			return err
		}
		if strings.Contains(body, "swarm_manager_leader") {
			return fmt.Errorf("a worker exports manager metrics")
		}
		return hasLines(body, "swarm_node_manager 0", "shoal_agent_session 1")
	})
	eventually(t, "the manager counts two ready nodes", func() error {
		_, body, err := testutil.HTTPGet(base + "/metrics")
		if err != nil {
			return err
		}
		return hasLines(body, `swarm_manager_nodes{state="ready"} 2`)
	})

	// A worker that stops is marked down for its missed heartbeats.
	n3 := startNodeWith(t, t.TempDir(), freeAddr(t), newFakeExec(), nil)
	if _, err := n3.local.Join(n3.ctx(), &api.JoinRequest{RemoteAddr: n1.addr, JoinToken: init.GetWorkerToken(),
		ListenAddr: n3.addr, AdvertiseAddr: n3.addr}); err != nil {
		t.Fatalf("Join: %v", err)
	}
	eventually(t, "three sessions", func() error {
		_, body, err := testutil.HTTPGet(base + "/metrics")
		if err != nil {
			return err
		}
		return hasLines(body, `swarm_manager_nodes{state="ready"} 3`, "shoal_dispatcher_sessions 3", "shoal_dispatcher_heartbeat_failures_total 0")
	})
	n3.stop()
	eventually(t, "the stopped worker marked down", func() error {
		_, body, err := testutil.HTTPGet(base + "/metrics")
		if err != nil {
			return err
		}
		return hasLines(body, `swarm_manager_nodes{state="down"} 1`, "shoal_dispatcher_heartbeat_failures_total 1", "shoal_dispatcher_sessions 2")
	})

	// The manager stops: the worker loses its session and is not ready.
	n1.stop()
	eventually(t, "the worker is not ready without a manager", func() error {
		code, body, err := testutil.HTTPGet(base2 + "/readyz")
		if err != nil || code != 503 || !strings.Contains(body, "no session") {
			return fmt.Errorf("/readyz: %d %q %v", code, body, err)
		}
		return nil
	})
}
