package orchestrator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// gatePlacer is a fakePlacer whose every call after the first waits for
// release.
type gatePlacer struct {
	fakePlacer
	release chan struct{}
	calls   atomic.Int32
}

func (p *gatePlacer) PlaceNew(ctx context.Context, tasks []*api.Task) (map[string]string, func()) {
	if p.calls.Add(1) > 1 {
		select {
		case <-p.release:
		case <-ctx.Done():
		}
	}
	return p.fakePlacer.PlaceNew(ctx, tasks)
}

// A create pass that waits long for its writes (at 1,000,000 replicas,
// minutes) takes the watch's events meanwhile: the RUNNING reports of its
// first part, many times the watch's buffer, arrive while the second part
// waits, and the watch is not cut off (it was, and the loop then read every
// task again from a full snapshot at the worst moment). Its own creates,
// placed, and those reports are quiet: no pass reads the service's tasks
// again.
func TestLongCreatePassKeepsItsWatch(t *testing.T) {
	const replicas = 2 * raftstore.BatchItems
	store := raftstore.NewStandaloneStore(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nodes := []string{"n1", "n2", "n3", "n4"}
	if err := store.Update(ctx, func(tx *raftstore.Tx) error {
		for _, id := range nodes {
			if err := tx.Create(&api.Node{Id: id, Spec: &api.NodeSpec{}, Status: &api.NodeStatus{State: api.NodeStatus_READY}}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	placer := &gatePlacer{fakePlacer: fakePlacer{nodes: nodes}, release: make(chan struct{})}
	o := New(store, nil, slog.New(slog.NewTextHandler(io.Discard, nil))).WithPlacer(placer)
	o.watchBuffer = raftstore.BatchItems + 500 // a part's creates fit
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = o.Run(ctx) }()
	defer wg.Wait()
	defer cancel()
	svc := createWeb(t, ctx, store, replicas)

	tasks := func() []*api.Task {
		var ts []*api.Task
		store.View(func(tx raftstore.ReadTx) { ts = tx.TasksByService(svc.Id) })
		return ts
	}
	// RUNNING reports, one task a transaction: 2,000 events a part.
	report := func() {
		var ids []string
		for _, t := range tasks() {
			if t.GetStatus().GetState() == api.TaskState_ASSIGNED {
				ids = append(ids, t.Id)
			}
		}
		for len(ids) > 0 {
			n := 1
			if err := store.Update(ctx, func(tx *raftstore.Tx) error {
				for _, id := range ids[:n] {
					c := raftstore.CloneTask(tx.Task(id))
					c.Status = &api.TaskStatus{State: api.TaskState_RUNNING, Timestamp: c.Status.GetTimestamp()}
					if err := tx.Update(c); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			ids = ids[n:]
		}
	}
	testutil.EventuallyErr(t, 10*time.Second, 5*time.Millisecond, func() error {
		if n := len(tasks()); n != raftstore.BatchItems {
			return fmt.Errorf("%d tasks stored", n)
		}
		return nil
	}, "the first part committed, the second waiting")
	report()
	close(placer.release)
	testutil.EventuallyErr(t, 10*time.Second, 5*time.Millisecond, func() error {
		if n := len(tasks()); n != replicas {
			return fmt.Errorf("%d tasks stored", n)
		}
		return nil
	}, "every task created")
	report()
	for _, task := range tasks() {
		if task.GetStatus().GetState() != api.TaskState_RUNNING || task.NodeId == "" {
			t.Fatalf("task %s: %v on %q, want RUNNING on a node", task.Id, task.GetStatus().GetState(), task.NodeId)
		}
	}
	waitIdle(o)
	if n := o.stats.snapshots.Load(); n != 1 {
		t.Fatalf("%d full snapshots, want 1: the watch was cut off during the create", n)
	}
	if n := o.stats.passes.Load(); n != 1 {
		t.Fatalf("%d passes read the service's tasks, want 1 (the create's): the create's own events were not quiet", n)
	}
	if n := o.stats.skipped.Load(); n == 0 {
		t.Fatal("no pass skipped: the events taken during the pass marked nothing")
	}
}
