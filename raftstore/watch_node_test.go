package raftstore

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

// collector reads a watcher's events until its channel closes.
type collector struct {
	w    *Watcher
	mu   sync.Mutex
	evs  []string
	done chan struct{}
}

func collect(w *Watcher) *collector {
	c := &collector{w: w, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for ev := range w.C {
			id := ""
			if ev.Object != nil {
				id = ev.Object.GetId()
			}
			c.mu.Lock()
			c.evs = append(c.evs, fmt.Sprintf("%d %s %s %s", ev.Version, ev.Action, ev.Kind, id))
			c.mu.Unlock()
		}
	}()
	return c
}

// finish waits until nothing is pending, ends the watch and returns what
// the consumer saw: nothing is dropped, as the queue and channel are empty.
func (c *collector) finish(t *testing.T) []string {
	t.Helper()
	pumpStopped(t, c.w)
	deadline := time.Now().Add(5 * time.Second)
	for len(c.w.C) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the collector does not drain its watcher")
		}
		time.Sleep(time.Millisecond)
	}
	if err := c.w.Err(); err != nil {
		t.Fatalf("the watch ended early: %v", err)
	}
	c.w.Close()
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the collector did not end")
	}
	return c.evs
}

// TestNodeWatchMatchesFilterWatch runs a random sequence of task creates,
// updates, moves between nodes (and to none) and deletes, and node
// creates, updates and deletes, and checks that each node's NodeID watcher
// gets exactly the events of a Filter-based watcher doing what the
// dispatcher's assignments filter did before NodeID (and its node's own
// events, for a watcher of all kinds).
func TestNodeWatchMatchesFilterWatch(t *testing.T) {
	s := NewStandaloneStore(nil)
	ctx := context.Background()
	nodes := []string{"n0", "n1", "n2", "n3"}
	var byNode, byFilter, allByNode, allByFilter []*collector
	for _, n := range nodes {
		byNode = append(byNode, collect(s.Watch(WatchOptions{Kinds: []string{KindTask}, NodeID: n, Commits: true})))
		byFilter = append(byFilter, collect(s.Watch(WatchOptions{Kinds: []string{KindTask}, Commits: true, Filter: func(ev Event) bool {
			t, _ := ev.Object.(*api.Task)
			o, _ := ev.Old.(*api.Task)
			return (t != nil && t.NodeId == n) || (o != nil && o.NodeId == n)
		}})))
		allByNode = append(allByNode, collect(s.Watch(WatchOptions{NodeID: n})))
		allByFilter = append(allByFilter, collect(s.Watch(WatchOptions{Filter: func(ev Event) bool {
			if ev.Kind == KindNode {
				return ev.Object.GetId() == n
			}
			t, _ := ev.Object.(*api.Task)
			o, _ := ev.Old.(*api.Task)
			return ev.Kind == KindTask && ((t != nil && t.NodeId == n) || (o != nil && o.NodeId == n))
		}})))
	}
	createServices(t, s, 0, 1)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	pick := func() string { // a node, or none (unassigned), or one nobody watches
		if i := rng.Intn(len(nodes) + 2); i < len(nodes) {
			return nodes[i]
		} else if i == len(nodes) {
			return ""
		}
		return "elsewhere"
	}
	next := 0
	for range 300 {
		if err := s.Update(ctx, func(tx *Tx) error {
			seen := map[string]bool{}
			for range 1 + rng.Intn(8) {
				tasks := tx.Tasks()
				switch op := rng.Intn(10); {
				case op < 3 || len(tasks) == 0:
					next++
					id := fmt.Sprintf("t%05d", next)
					seen[id] = true
					if err := tx.Create(&api.Task{Id: id, ServiceId: "s00000", NodeId: pick()}); err != nil {
						return err
					}
				case op < 8:
					o := tasks[rng.Intn(len(tasks))]
					if seen[o.Id] {
						continue
					}
					seen[o.Id] = true
					u := proto.Clone(o).(*api.Task)
					if rng.Intn(2) == 0 {
						u.NodeId = pick()
					} else {
						u.DesiredState = api.TaskState(rng.Intn(5))
					}
					if err := tx.Update(u); err != nil {
						return err
					}
				default:
					o := tasks[rng.Intn(len(tasks))]
					if seen[o.Id] {
						continue
					}
					seen[o.Id] = true
					if err := tx.Delete(o); err != nil {
						return err
					}
				}
			}
			id := pick()
			if id == "" || seen[id] {
				return nil
			}
			seen[id] = true
			switch n := tx.Node(id); {
			case n == nil:
				return tx.Create(&api.Node{Id: id})
			case rng.Intn(3) == 0:
				return tx.Delete(n)
			default:
				u := proto.Clone(n).(*api.Node)
				u.Role = api.NodeRole(rng.Intn(2))
				return tx.Update(u)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for i, n := range nodes {
		a, b := byNode[i].finish(t), byFilter[i].finish(t)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("node %s: the NodeID watcher got\n%v\nthe Filter watcher got\n%v", n, a, b)
		}
		c, d := allByNode[i].finish(t), allByFilter[i].finish(t)
		if fmt.Sprint(c) != fmt.Sprint(d) {
			t.Errorf("node %s, all kinds: the NodeID watcher got\n%v\nthe Filter watcher got\n%v", n, c, d)
		}
		total += len(a) + len(c)
	}
	if total < 300 {
		t.Fatalf("only %d events reached the watchers: the sequence does not exercise them", total)
	}
	if len(s.watchers) != 0 || len(s.byNode) != 0 {
		t.Fatalf("closed watchers still registered: %d, %d nodes", len(s.watchers), len(s.byNode))
	}
}

// TestViewAndWatchRunsFnOutsideTheLock checks that a write can commit
// while ViewAndWatch's fn runs (it used to wait behind it), that fn's
// snapshot does not see that write and the watch delivers it once.
func TestViewAndWatchRunsFnOutsideTheLock(t *testing.T) {
	s := NewStandaloneStore(nil)
	createServices(t, s, 0, 1)
	var inSnapshot int
	w := s.ViewAndWatch(WatchOptions{Kinds: []string{KindService}}, func(tx ReadTx) {
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			done <- s.Update(ctx, func(tx *Tx) error { return tx.Create(svc("s00001", "n00001")) })
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the write during fn: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("a write waited behind ViewAndWatch's fn")
		}
		inSnapshot = len(tx.Services())
	})
	defer w.Close()
	if inSnapshot != 1 {
		t.Fatalf("fn's snapshot saw %d services, want the 1 before the watch", inSnapshot)
	}
	select {
	case ev := <-w.C:
		if ev.Action != ActionCreate || ev.Object.GetId() != "s00001" {
			t.Fatalf("first event %v %s, want the create of s00001", ev.Action, ev.Object.GetId())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the write during fn never reached the watch")
	}
	select {
	case ev := <-w.C:
		t.Fatalf("an extra event: %v %s", ev.Action, ev.Object.GetId())
	case <-time.After(50 * time.Millisecond):
	}
}

// TestViewAndWatchEndsTheWatchWhenFnPanics: the watch a panicking fn
// started is not left registered.
func TestViewAndWatchEndsTheWatchWhenFnPanics(t *testing.T) {
	s := NewStandaloneStore(nil)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("fn's panic did not reach the caller")
			}
		}()
		s.ViewAndWatch(WatchOptions{NodeID: "n1"}, func(ReadTx) { panic("boom") })
	}()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.watchers) != 0 || len(s.byNode) != 0 {
		t.Fatalf("the watch outlived fn's panic: %d, %d nodes", len(s.watchers), len(s.byNode))
	}
}

// A NodeID watcher's channel holds watchChanCap events (one such
// watcher per node on the leader), and a transaction with more events
// about its node than that still reaches it whole and in order, through
// the queue, while the other node's events stay out.
func TestNodeWatchPassesBursts(t *testing.T) {
	s := NewStandaloneStore(nil)
	createServices(t, s, 0, 1)
	w := s.Watch(WatchOptions{Kinds: []string{KindTask}, NodeID: "n1", Commits: true})
	defer w.Close()
	if cap(w.C) != watchChanCap {
		t.Fatalf("a NodeID watcher's channel holds %d events, want %d", cap(w.C), watchChanCap)
	}
	if err := s.Update(context.Background(), func(tx *Tx) error {
		for i := range 300 {
			node := "n1"
			if i%3 == 2 {
				node = "n2"
			}
			if err := tx.Create(&api.Task{Id: fmt.Sprintf("t%05d", i), ServiceId: "s00000", NodeId: node}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	next := 0
	for range 200 {
		ev := <-w.C
		if next%3 == 2 {
			next++
		}
		if want := fmt.Sprintf("t%05d", next); ev.Action != ActionCreate || ev.Object.GetId() != want {
			t.Fatalf("got %v %v, want the create of %s", ev.Action, ev.Object, want)
		}
		next++
	}
	if ev := <-w.C; ev.Action != ActionCommit {
		t.Fatalf("after the node's 200 creates: %v, want the commit", ev.Action)
	}
	pumpStopped(t, w)
	if err := w.Err(); err != nil {
		t.Fatalf("the watch ended: %v", err)
	}
}
