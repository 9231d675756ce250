package manager_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/internal/testcluster"
	"github.com/shoal-project/shoal/manager"
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
	if manager.RaceDetector {
		return 5_000
	}
	return 100_000
}

// scaleWait bounds each step of the scale tests in wall time
// (SHOAL_SCALE_WAIT).
var scaleWait = func() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("SHOAL_SCALE_WAIT")); err == nil {
		return d
	}
	return 10 * time.Minute
}()

// forever is a bound in cluster time that never binds: the scale tests are
// bounded by scaleWait in wall time.
const forever = 1000 * time.Hour

// A huge service (with a constraint no node meets) must not take a manager
// down: create, scale to twice as many, scale to 0, remove; every manager
// stays up, each step settles, and the managers' stores end identical and
// empty of tasks. The cluster is the in-process harness (on the wall
// clock): real agents on five workers, the Control API over mTLS.
func TestHugeServiceSingleManager(t *testing.T) { testHugeService(t, 1) }

func TestHugeServiceThreeManagers(t *testing.T) { testHugeService(t, 3) }

func testHugeService(t *testing.T, managers int) {
	if testing.Short() {
		t.Skip("scale test")
	}
	n := scaleReplicas(t)
	// The wall clock: these tests measure the control plane in wall time,
	// and the scheduling loop arms a clock timer per event, which a fake
	// clock (clockwork) keeps until time moves: 100,000 of them made the
	// fake-clock run far slower than the real one.
	c := testcluster.New(t, testcluster.Options{Managers: managers, Workers: scaleWorkers, NoManagerAgents: true, WallClock: true, WallLimit: scaleWait})
	spec := &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "huge", Labels: map[string]string{"size": "huge"}},
		Task: &api.TaskSpec{
			Container: &api.ContainerSpec{Image: "127.0.0.1:5000/busybox:1", Args: []string{"sleep", "3600"}},
			Placement: &api.Placement{Constraints: []string{"node.hostname==nowhere"}},
		},
		Mode: &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: n}},
	}
	start := time.Now()
	svc := c.CreateService(spec)
	waitUnplaced(c, svc.Id, n)
	t.Logf("%d managers: %d replicas created and explained as unplaceable in %v", managers, n, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	scale(c, 2*n)
	waitUnplaced(c, svc.Id, 2*n)
	t.Logf("%d managers: scaled to %d in %v", managers, 2*n, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	scale(c, 0)
	waitTasks(c, svc.Id, 0)
	t.Logf("%d managers: scaled to 0 in %v", managers, time.Since(start).Round(time.Millisecond))

	// Back up and remove while the tasks are still being created.
	scale(c, n/10)
	c.Call("remove", func(ctx context.Context, cl api.ControlClient) error {
		_, err := cl.RemoveService(ctx, &api.RemoveServiceRequest{ServiceId: svc.Id})
		return err
	})
	waitTasks(c, svc.Id, 0)
	if managers > 1 {
		c.Converged(forever)
	}
	if err := c.Crashed(); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Managers() {
		m.Manager().Store().View(func(tx raftstore.ReadTx) {
			if len(tx.Tasks()) != 0 || len(tx.Services()) != 0 {
				states := map[string]int{}
				for _, task := range tx.Tasks() {
					states[fmt.Sprintf("%s %v/%v removed=%v", task.ServiceId, task.GetStatus().GetState(), task.DesiredState, task.ServiceRemoved)]++
				}
				t.Errorf("manager %s still holds %d tasks and %d services: %v", m.Name, len(tx.Tasks()), len(tx.Services()), states)
			}
		})
	}
}

func scale(c *testcluster.Cluster, replicas uint64) {
	c.UpdateService("huge", func(s *api.ServiceSpec) {
		s.Mode = &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: replicas}}
	})
}

// waitUnplaced waits until the service has exactly n tasks, each pending
// with the scheduler's reason recorded.
func waitUnplaced(c *testcluster.Cluster, svcID string, n uint64) {
	var total, explained int
	c.WaitFor(fmt.Sprintf("%d unplaceable tasks with a reason", n), forever, func() error {
		total, explained = 0, 0
		c.View(func(tx raftstore.ReadTx) {
			for _, t := range tx.TasksByService(svcID) {
				total++
				if t.GetStatus().GetState() == api.TaskState_PENDING && t.GetStatus().GetErr() != "" && t.DesiredState == api.TaskState_RUNNING {
					explained++
				}
			}
		})
		if uint64(total) != n || uint64(explained) != n {
			return fmt.Errorf("%d tasks, %d explained: %s", total, explained, c.Describe("huge"))
		}
		return nil
	})
}

// waitTasks waits until the service has n tasks left.
func waitTasks(c *testcluster.Cluster, svcID string, n int) {
	c.WaitFor(fmt.Sprintf("%d tasks left", n), forever, func() error {
		total := 0
		c.View(func(tx raftstore.ReadTx) { total = len(tx.TasksByService(svcID)) })
		if total != n {
			return fmt.Errorf("%d tasks left", total)
		}
		return nil
	})
}

// `swarm update --snapshot-interval` takes effect on every manager at once.
func TestSnapshotIntervalFollowsClusterSetting(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Managers: 3, NoManagerAgents: true})
	c.Call("update cluster", func(ctx context.Context, cl api.ControlClient) error {
		cur, err := cl.GetCluster(ctx, &api.GetClusterRequest{})
		if err != nil {
			return err
		}
		spec := proto.Clone(cur.Cluster.Spec).(*api.ClusterSpec)
		spec.Raft = &api.RaftSettings{SnapshotInterval: 10, LogEntriesForSlowFollowers: 5}
		_, err = cl.UpdateCluster(ctx, &api.UpdateClusterRequest{ClusterId: cur.Cluster.Id, ClusterVersion: cur.Cluster.Meta.Version, Spec: spec})
		return err
	})
	for i := 0; i < 30; i++ {
		c.Call("create", func(ctx context.Context, cl api.ControlClient) error {
			_, err := cl.CreateSecret(ctx, &api.CreateSecretRequest{Spec: &api.SecretSpec{
				Annotations: &api.Annotations{Name: fmt.Sprintf("s%d", i)}, Data: []byte("x")}})
			return err
		})
	}
	for _, m := range c.Managers() {
		c.WaitFor("a snapshot on "+m.Name, time.Minute, func() error {
			snap, err := m.Manager().Storage().Snapshot()
			if err != nil || snap.Metadata.Index == 0 {
				return fmt.Errorf("no snapshot yet (%v)", err)
			}
			return nil
		})
	}
}

// scaleWorkers is the number of worker agents in the scale tests
// (SHOAL_SCALE_WORKERS, default 5).
var scaleWorkers = func() int {
	if n, err := strconv.Atoi(os.Getenv("SHOAL_SCALE_WORKERS")); err == nil && n >= 0 {
		return n
	}
	return 5
}()
