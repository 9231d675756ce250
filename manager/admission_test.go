package manager

import (
	"context"
	"crypto/tls"
	"errors"
	"path/filepath"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/overload"
	"github.com/shoal-project/shoal/pki"
	"github.com/shoal-project/shoal/raftstore"
)

// An overloaded manager refuses most new agents' connections, counts them,
// and never refuses another manager's.
func TestOverloadedManagerRefusesNewConnectionsButManagers(t *testing.T) {
	now := time.Unix(1000, 0)
	waits := []uint64{0, 0, 0}
	buckets := []float64{0, 0.001, 2, 3} // waits of 1ms-2s, then 2s-3s
	read := func() *metrics.Float64Histogram {
		return &metrics.Float64Histogram{Counts: append([]uint64(nil), waits...), Buckets: buckets}
	}
	newManager := func(noShedding bool) *Manager {
		m, err := New(Config{NodeID: "n1", ClusterID: "c1", Addr: "127.0.0.1:1", RaftPath: filepath.Join(t.TempDir(), "raft.db"),
			Dial:     func(context.Context, string) (*grpc.ClientConn, error) { return nil, errors.New("no dialing here") },
			Overload: overload.Config{Now: func() time.Time { return now }, Read: read, Floor: -1}, NoShedding: noShedding,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close(); m.transport.Close() })
		runAlone(t, m) // a manager not started refuses agents whatever its load
		return m
	}
	m, unshed := newManager(false), newManager(true)
	agent := &tls.ClientHelloInfo{ServerName: pki.ManagerServerName, SupportedProtos: []string{"h2"}}
	peer := &tls.ClientHelloInfo{ServerName: pki.ManagerServerName, SupportedProtos: []string{pki.PeerProto, "h2"}}
	refused := func(m *Manager, hello *tls.ClientHelloInfo) int {
		n := 0
		for i := 0; i < 100; i++ {
			if err := m.AdmitHandshake(hello); err != nil {
				if !errdefs.IsUnavailable(err) {
					t.Fatalf("refusal %v is not Unavailable", err)
				}
				n++
			}
		}
		return n
	}
	if n := refused(m, agent); n != 0 {
		t.Fatalf("an idle manager refused %d of 100 connections", n)
	}
	waits[2] += 1000 // a window in which goroutines waited 2-3 s
	now = now.Add(time.Second)
	if n := refused(m, agent); n != 90 {
		t.Fatalf("overloaded: refused %d of 100 agents' connections, want 90", n)
	}
	if n := refused(m, peer); n != 0 {
		t.Fatalf("overloaded: refused %d of 100 managers' connections, want 0", n)
	}
	if n := refused(unshed, agent); n != 0 {
		t.Fatalf("with NoShedding refused %d of 100 connections", n)
	}
	want := `
# HELP shoal_manager_connections_refused_total New TLS connections this manager refused, right after their ClientHello, because its goroutines waited too long for a processor (overload) or, agents' connections, because it was still reading its raft snapshot and log; connections from other managers are never refused.
# TYPE shoal_manager_connections_refused_total counter
shoal_manager_connections_refused_total 90
# HELP shoal_manager_sched_wait_seconds 90th percentile of how long this manager's runnable goroutines waited for a processor, over its last sample window (what decides the refusals of new connections).
# TYPE shoal_manager_sched_wait_seconds gauge
shoal_manager_sched_wait_seconds 3
`
	if err := testutil.CollectAndCompare(m.Collector(), strings.NewReader(want), "shoal_manager_connections_refused_total", "shoal_manager_sched_wait_seconds"); err != nil {
		t.Fatal(err)
	}
}

// runAlone runs m as the only manager of a new cluster until it leads (it
// has then applied everything), and stops it when the test ends.
func runAlone(t *testing.T, m *Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, raftstore.Bootstrap) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the manager did not stop")
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for !m.Leading() {
		if time.Now().After(deadline) {
			t.Fatal("the manager did not lead within 20 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A manager whose raft member has not started (as while a restarted one
// reads its snapshot and log) refuses agents' new connections, with an
// error that says why and what to do, counts them, and admits other
// managers' and joining nodes'; once started it admits agents again.
func TestRestoringManagerRefusesAgentsButManagers(t *testing.T) {
	m, err := New(Config{NodeID: "n1", ClusterID: "c1", Addr: "127.0.0.1:1", RaftPath: filepath.Join(t.TempDir(), "raft.db"),
		Dial: func(context.Context, string) (*grpc.ClientConn, error) { return nil, errors.New("no dialing here") },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); m.transport.Close() })
	agent := &tls.ClientHelloInfo{ServerName: pki.ManagerServerName, SupportedProtos: []string{"h2"}}
	peer := &tls.ClientHelloInfo{ServerName: pki.ManagerServerName, SupportedProtos: []string{pki.PeerProto, "h2"}}
	err = m.AdmitHandshake(agent)
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "snapshot") || !strings.Contains(err.Error(), "another manager") {
		t.Fatalf("a manager not started admitted an agent's connection or said nothing useful: %v", err)
	}
	if err := m.AdmitHandshake(peer); err != nil {
		t.Fatalf("a manager not started refused another manager's connection: %v", err)
	}
	joiner := &tls.ClientHelloInfo{ServerName: pki.ManagerServerName, SupportedProtos: []string{pki.JoinProto, "h2"}}
	if err := m.AdmitHandshake(joiner); err != nil {
		t.Fatalf("a manager not started refused a joining node's connection: %v", err)
	}
	if got := m.shedStats().Shed; got != 1 {
		t.Fatalf("refusals counted %d, want 1", got)
	}
	runAlone(t, m)
	if err := m.AdmitHandshake(agent); err != nil {
		t.Fatalf("a started manager refused an agent: %v", err)
	}
}
