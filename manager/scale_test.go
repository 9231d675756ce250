package manager

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// scaleReplicas is the replica count of the scale tests: 100,000, then
// 200,000. Under the race detector it is 5,000 (`make test` runs the full
// size in a step of its own without -race). SHOAL_SCALE_REPLICAS
// overrides it.
func scaleReplicas(t *testing.T) uint64 {
	if v := os.Getenv("SHOAL_SCALE_REPLICAS"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("SHOAL_SCALE_REPLICAS=%q: %v", v, err)
		}
		return n
	}
	if raceDetector {
		return 5_000
	}
	return 100_000
}

// A huge service (with a constraint no node meets) must not take a manager
// down: create, scale to twice as many, scale to 0, remove; every manager
// stays up, each step settles, and the managers' stores end identical and
// empty of tasks.
func TestHugeServiceSingleManager(t *testing.T) { testHugeService(t, 1) }

func TestHugeServiceThreeManagers(t *testing.T) { testHugeService(t, 3) }

func testHugeService(t *testing.T, managers int) {
	if testing.Short() {
		t.Skip("scale test")
	}
	n := scaleReplicas(t)
	c := newTestCluster(t, managers, 5)
	spec := &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "huge", Labels: map[string]string{"size": "huge"}},
		Task: &api.TaskSpec{
			Container: &api.ContainerSpec{Image: "127.0.0.1:5000/busybox:1", Args: []string{"sleep", "3600"}},
			Placement: &api.Placement{Constraints: []string{"node.hostname==nowhere"}},
		},
		Mode: &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: n}},
	}
	var svcID string
	start := time.Now()
	c.call("create", func(ctx context.Context, s api.ControlServer) error {
		resp, err := s.CreateService(ctx, &api.CreateServiceRequest{Spec: spec})
		if err == nil {
			svcID = resp.Service.Id
		}
		return err
	})
	c.waitUnplaced(svcID, n, scaleWait)
	t.Logf("%d managers: %d replicas created and explained as unplaceable in %v", managers, n, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	c.scale(svcID, 2*n)
	c.waitUnplaced(svcID, 2*n, scaleWait)
	t.Logf("%d managers: scaled to %d in %v", managers, 2*n, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	c.scale(svcID, 0)
	c.waitTasks(svcID, 0, scaleWait)
	t.Logf("%d managers: scaled to 0 in %v", managers, time.Since(start).Round(time.Millisecond))

	// Back up and remove while the tasks are still being created.
	c.scale(svcID, n/10)
	c.call("remove", func(ctx context.Context, s api.ControlServer) error {
		_, err := s.RemoveService(ctx, &api.RemoveServiceRequest{ServiceId: svcID})
		return err
	})
	c.waitTasks(svcID, 0, scaleWait)
	c.alive()
	if managers > 1 {
		c.converged(2 * time.Minute)
	}
	for _, m := range c.members {
		m.m.Store().View(func(tx raftstore.ReadTx) {
			if len(tx.Tasks()) != 0 || len(tx.Services()) != 0 {
				states := map[string]int{}
				for _, task := range tx.Tasks() {
					states[fmt.Sprintf("%s %v/%v removed=%v", task.ServiceId, task.GetStatus().GetState(), task.DesiredState, task.ServiceRemoved)]++
				}
				t.Errorf("manager %s still holds %d tasks and %d services: %v", m.addr, len(tx.Tasks()), len(tx.Services()), states)
			}
		})
	}
}

func (c *testCluster) scale(svcID string, replicas uint64) {
	c.t.Helper()
	c.call(fmt.Sprintf("scale to %d", replicas), func(ctx context.Context, s api.ControlServer) error {
		cur, err := s.GetService(ctx, &api.GetServiceRequest{ServiceId: svcID})
		if err != nil {
			return err
		}
		spec := proto.Clone(cur.Service.Spec).(*api.ServiceSpec) // the store's own object: never modify it
		spec.Mode = &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: replicas}}
		_, err = s.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: svcID, ServiceVersion: cur.Service.Meta.Version, Spec: spec})
		return err
	})
}

// waitUnplaced waits until the service has exactly n tasks, each pending
// with the scheduler's reason recorded.
func (c *testCluster) waitUnplaced(svcID string, n uint64, d time.Duration) {
	c.t.Helper()
	var total, explained int
	c.eventually(d, fmt.Sprintf("%d unplaceable tasks with a reason", n), func() bool {
		total, explained = 0, 0
		c.leader().m.Store().View(func(tx raftstore.ReadTx) {
			for _, t := range tx.TasksByService(svcID) {
				total++
				if t.GetStatus().GetState() == api.TaskState_PENDING && t.GetStatus().GetErr() != "" && t.DesiredState == api.TaskState_RUNNING {
					explained++
				}
			}
		})
		return uint64(total) == n && uint64(explained) == n
	}, func() string { return c.describeTasks(svcID) })
}

// describeTasks counts a service's tasks by state, desired state and
// whether they carry a reason, for failure messages.
func (c *testCluster) describeTasks(svcID string) string {
	counts := map[string]int{}
	c.leader().m.Store().View(func(tx raftstore.ReadTx) {
		for _, t := range tx.TasksByService(svcID) {
			counts[fmt.Sprintf("%v/%v/reason=%v", t.GetStatus().GetState(), t.DesiredState, t.GetStatus().GetErr() != "")]++
		}
	})
	return fmt.Sprint(counts)
}

// waitTasks waits until the service has n tasks left.
func (c *testCluster) waitTasks(svcID string, n int, d time.Duration) {
	c.t.Helper()
	c.eventually(d, fmt.Sprintf("%d tasks left", n), func() bool {
		total := 0
		c.leader().m.Store().View(func(tx raftstore.ReadTx) { total = len(tx.TasksByService(svcID)) })
		return total == n
	}, func() string { return c.describeTasks(svcID) })
}

// scaleWait bounds each step of the scale tests (SHOAL_SCALE_WAIT).
var scaleWait = func() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("SHOAL_SCALE_WAIT")); err == nil {
		return d
	}
	return 10 * time.Minute
}()

// `swarm update --snapshot-interval` takes effect on every manager at once.
func TestSnapshotIntervalFollowsClusterSetting(t *testing.T) {
	c := newTestCluster(t, 3, 0)
	c.call("update cluster", func(ctx context.Context, s api.ControlServer) error {
		cur, err := s.GetCluster(ctx, &api.GetClusterRequest{})
		if err != nil {
			return err
		}
		spec := proto.Clone(cur.Cluster.Spec).(*api.ClusterSpec)
		spec.Raft = &api.RaftSettings{SnapshotInterval: 10, LogEntriesForSlowFollowers: 5}
		_, err = s.UpdateCluster(ctx, &api.UpdateClusterRequest{ClusterId: cur.Cluster.Id, ClusterVersion: cur.Cluster.Meta.Version, Spec: spec})
		return err
	})
	for i := 0; i < 30; i++ {
		c.call("create", func(ctx context.Context, s api.ControlServer) error {
			_, err := s.CreateSecret(ctx, &api.CreateSecretRequest{Spec: &api.SecretSpec{
				Annotations: &api.Annotations{Name: fmt.Sprintf("s%d", i)}, Data: []byte("x")}})
			return err
		})
	}
	for _, m := range c.members {
		c.eventually(10*time.Second, "a snapshot on "+m.addr, func() bool {
			snap, err := m.m.Storage().Snapshot()
			return err == nil && snap.Metadata.Index > 0
		})
	}
}
