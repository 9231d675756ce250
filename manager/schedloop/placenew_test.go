package schedloop

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/manager/internal/storetest"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// newTask is a task about to be created (NEW, not in the store yet).
func newTask(id, service string, cpus int64) *api.Task {
	t := pending(id, service, cpus)
	t.Status.State = api.TaskState_NEW
	return t
}

// startLoop runs a loop on store and waits until it takes PlaceNew calls.
func startLoop(t *testing.T, store *raftstore.Store) *Loop {
	t.Helper()
	l := New(store, nil, quiet())
	storetest.Start(t, l.Run)
	storetest.Eventually(t, "the loop running", l.running.Load)
	return l
}

// A plan made for tasks about to be created holds its room in the loop's
// view until the creating transaction is over: a pending task does not get
// that room meanwhile; once done reports that the tasks were never created,
// the room is free again and the pending task is placed there.
func TestPlaceNewHoldsRoomUntilDone(t *testing.T) {
	store, _ := storetest.New(nil)
	storetest.Seed(t, store, node("n1", 2))
	l := startLoop(t, store)
	nodes, done := l.PlaceNew(context.Background(), []*api.Task{newTask("new1", "svc", 1), newTask("new2", "svc", 1), newTask("new3", "svc", 1)})
	if len(nodes) != 2 || nodes["new1"] != "n1" || nodes["new2"] != "n1" {
		t.Fatalf("plan %v, want new1 and new2 on n1 (room for two)", nodes)
	}
	storetest.Seed(t, store, pending("p1", "svc", 1))
	storetest.Eventually(t, "p1 waits for room", func() bool { return strings.Contains(get(store, "p1").GetStatus().GetErr(), "insufficient") })
	done()
	storetest.Eventually(t, "p1 placed once the plan was given up", func() bool { return assigned(store, "p1") && get(store, "p1").NodeId == "n1" })
}

// Tasks created as planned keep their room after done, and count as the
// loop's placements; a loop that is not running plans nothing, at once.
func TestPlaceNewCreatedAsPlanned(t *testing.T) {
	store, _ := storetest.New(nil)
	storetest.Seed(t, store, node("n1", 1))
	if nodes, done := New(store, nil, quiet()).PlaceNew(context.Background(), []*api.Task{newTask("x", "svc", 1)}); nodes != nil {
		t.Fatalf("a stopped loop planned %v", nodes)
	} else {
		done()
	}
	var m Metrics
	l := New(store, nil, quiet()).WithMetrics(&m)
	storetest.Start(t, l.Run)
	storetest.Eventually(t, "the loop running", l.running.Load)
	nodes, done := l.PlaceNew(context.Background(), []*api.Task{newTask("new1", "svc", 1)})
	if nodes["new1"] != "n1" {
		t.Fatalf("plan %v", nodes)
	}
	created := newTask("new1", "svc", 1)
	created.NodeId, created.Status.State = "n1", api.TaskState_ASSIGNED
	storetest.Seed(t, store, created)
	done()
	storetest.Eventually(t, "the placement counted", func() bool { return m.Snapshot().Placements == 1 })
	storetest.Seed(t, store, pending("p1", "svc", 1))
	storetest.Eventually(t, "p1 waits for room", func() bool { return strings.Contains(get(store, "p1").GetStatus().GetErr(), "insufficient") })
}

// A caller that gives up on a loop busy elsewhere gets no plan, within
// placeNewWait, and the loop then ignores the call.
func TestPlaceNewGivesUpOnABusyLoop(t *testing.T) {
	store, _ := storetest.New(nil)
	storetest.Seed(t, store, node("n1", 4))
	l := startLoop(t, store)
	release := make(chan struct{})
	l.calls <- func() { <-release } // the loop is held
	start := time.Now()
	nodes, done := l.PlaceNew(context.Background(), []*api.Task{newTask("new1", "svc", 1)})
	if nodes != nil || time.Since(start) > 5*placeNewWait {
		t.Fatalf("plan %v after %v from a held loop", nodes, time.Since(start))
	}
	done()
	close(release)
	storetest.Seed(t, store, pending("p1", "svc", 4))
	storetest.Eventually(t, "p1 placed: the given-up call held nothing", func() bool { return assigned(store, "p1") })
}
