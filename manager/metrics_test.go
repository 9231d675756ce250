package manager

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// fakeRaft is a leader of term 7 among 3 members, one unreachable.
type fakeRaft struct{}

func (fakeRaft) IsLeader() bool                       { return true }
func (fakeRaft) Term() uint64                         { return 7 }
func (fakeRaft) AppliedIndex() uint64                 { return 1234 }
func (fakeRaft) Leader() uint64                       { return 1 }
func (fakeRaft) LeaderChanges() uint64                { return 3 }
func (fakeRaft) DiskFault() *raftstore.DiskFaultError { return nil }
func (fakeRaft) Stats() raftstore.Stats {
	var h raftstore.Histogram
	h.Observe(3 * time.Millisecond)
	return raftstore.Stats{CommitIndex: 1240, Proposals: h.Snapshot(), SnapshotBytes: 4096}
}
func (fakeRaft) Members() []raftstore.MemberStatus {
	return []raftstore.MemberStatus{{RaftID: 1, Reachable: true}, {RaftID: 2, Reachable: true}, {RaftID: 3}}
}

// metricsStore holds services svc0..svc(n-1), each with perService
// tasks: all running but the last, which failed; and 3 nodes, one down.
func metricsStore(tb testing.TB, services, perService int) *raftstore.Store {
	store := raftstore.NewStandaloneStore(nil)
	err := store.Update(context.Background(), func(tx *raftstore.Tx) error {
		for i, st := range []api.NodeStatus_State{api.NodeStatus_READY, api.NodeStatus_READY, api.NodeStatus_DOWN} {
			if err := tx.Create(&api.Node{Id: fmt.Sprintf("n%d", i), Status: &api.NodeStatus{State: st}}); err != nil {
				return err
			}
		}
		for s := 0; s < services; s++ {
			id := fmt.Sprintf("svc%d", s)
			svc := &api.Service{Id: id, Spec: &api.ServiceSpec{Annotations: &api.Annotations{Name: id},
				Task: &api.TaskSpec{Container: &api.ContainerSpec{Image: "x"}},
				Mode: &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: uint64(perService)}}}}
			if err := tx.Create(svc); err != nil {
				return err
			}
			for i := 0; i < perService; i++ {
				state := api.TaskState_RUNNING
				if i == perService-1 {
					state = api.TaskState_FAILED
				}
				if err := tx.Create(&api.Task{Id: fmt.Sprintf("%s-t%d", id, i), ServiceId: id, Slot: uint64(i + 1), NodeId: "n0",
					DesiredState: api.TaskState_RUNNING, Status: &api.TaskStatus{State: state}}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return store
}

func TestManagerMetrics(t *testing.T) {
	c := collector{raft: fakeRaft{}, store: metricsStore(t, 2, 3)}
	want := `
# HELP shoal_service_replicas_running Running tasks of a service, as ` + "`shoal service ls`" + ` counts them.
# TYPE shoal_service_replicas_running gauge
shoal_service_replicas_running{service_id="svc0",service_name="svc0"} 2
shoal_service_replicas_running{service_id="svc1",service_name="svc1"} 2
# HELP swarm_manager_leader Indicates if this manager node is a leader (1 or 0).
# TYPE swarm_manager_leader gauge
swarm_manager_leader 1
# HELP shoal_raft_leader_changes_total Leaders this manager has seen take over since it started.
# TYPE shoal_raft_leader_changes_total counter
shoal_raft_leader_changes_total 3
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "shoal_service_replicas_running", "swarm_manager_leader", "shoal_raft_leader_changes_total"); err != nil {
		t.Error(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err) // the pedantic registry checks names, help and label consistency
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "/" + l.GetValue()
			}
			got[key] = m.GetGauge().GetValue() + m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	for key, v := range map[string]float64{
		"swarm_manager_nodes/ready": 2, "swarm_manager_nodes/down": 1, "swarm_manager_nodes/unknown": 0,
		"swarm_manager_tasks_total/running": 4, "swarm_manager_tasks_total/failed": 2, "swarm_manager_tasks_total/new": 0,
		"swarm_manager_services_total": 2, "shoal_store_objects/task": 6, "shoal_store_objects/node": 3, "shoal_store_objects/service": 2, "shoal_store_objects/cluster": 0, "shoal_service_replicas_desired/svc1/svc1": 3, "shoal_service_replicas_updated/svc1/svc1": 2,
		"shoal_raft_term": 7, "shoal_raft_applied_index": 1234, "shoal_raft_commit_index": 1240, "shoal_raft_snapshot_bytes": 4096, "shoal_raft_members/true": 2, "shoal_raft_members/false": 1, "shoal_raft_proposal_seconds": 1, "shoal_raft_snapshot_seconds": 0,
	} {
		if g, ok := got[key]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", key, g, ok, v)
		}
	}

	// An update under way: svc0 moved to spec version 1, one running task
	// runs it.
	err = c.store.Update(context.Background(), func(tx *raftstore.Tx) error {
		svc := proto.Clone(tx.Service("svc0")).(*api.Service)
		svc.SpecVersion = 1
		svc.UpdateStatus = &api.UpdateStatus{State: api.UpdateStatus_UPDATING}
		if err := tx.Update(svc); err != nil {
			return err
		}
		task := proto.Clone(tx.Task("svc0-t0")).(*api.Task)
		task.SpecVersion = 1
		return tx.Update(task)
	})
	if err != nil {
		t.Fatal(err)
	}
	progress := `
# HELP shoal_service_replicas_updated Running tasks of a service at its current spec version: an update's progress (against shoal_service_replicas_desired).
# TYPE shoal_service_replicas_updated gauge
shoal_service_replicas_updated{service_id="svc0",service_name="svc0"} 1
shoal_service_replicas_updated{service_id="svc1",service_name="svc1"} 2
# HELP shoal_service_update_state 1 for a service's current update state (updating, paused, completed, rollback_started, rollback_paused, rollback_completed); absent when it never updated.
# TYPE shoal_service_update_state gauge
shoal_service_update_state{service_id="svc0",service_name="svc0",state="updating"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(progress), "shoal_service_replicas_updated", "shoal_service_update_state"); err != nil {
		t.Error(err)
	}
}

// BenchmarkMetricsScrape serves /metrics of a manager holding 10,000 tasks
// (100 services of 100 tasks): the time of one scrape and its size.
func BenchmarkMetricsScrape(b *testing.B) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{raft: fakeRaft{}, store: metricsStore(b, 100, 100)})
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	size := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
		size = w.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes/scrape")
}
