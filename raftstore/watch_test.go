package raftstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func createServices(t *testing.T, s *Store, from, n int) {
	t.Helper()
	if err := s.Update(context.Background(), func(tx *Tx) error {
		for i := from; i < from+n; i++ {
			if err := tx.Create(svc(fmt.Sprintf("s%05d", i), fmt.Sprintf("n%05d", i))); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// pumpStopped waits until w has no goroutine moving its queue.
func pumpStopped(t *testing.T, w *Watcher) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		w.mu.Lock()
		p, q := w.pumping, len(w.queue)-w.head
		w.mu.Unlock()
		if !p && q == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watcher's pump still runs (%d queued)", q)
		}
		time.Sleep(time.Millisecond)
	}
}

// A watcher's room grows with what is pending: an idle one holds 64
// events' room; a burst of 1,000 events (more than the channel holds) is
// delivered whole and in order; then the queue is emptied (its room kept
// up to keptQueueRoom events).
func TestWatchRoomGrowsOnDemand(t *testing.T) {
	s := newLocalStore()
	w := s.Watch(WatchOptions{Commits: true})
	defer w.Close()
	if cap(w.C) != watchChanCap {
		t.Fatalf("an idle watcher's channel holds %d events, want %d", cap(w.C), watchChanCap)
	}
	createServices(t, s, 0, 1000)
	for i := range 1000 {
		ev := <-w.C
		if want := fmt.Sprintf("s%05d", i); ev.Action != ActionCreate || ev.Object.GetId() != want {
			t.Fatalf("event %d: %v %v, want a create of %s", i, ev.Action, ev.Object, want)
		}
	}
	if ev := <-w.C; ev.Action != ActionCommit {
		t.Fatalf("last event %v, want the commit", ev.Action)
	}
	pumpStopped(t, w)
	createServices(t, s, 1000, 1)
	if ev := <-w.C; ev.Object.GetId() != "s01000" {
		t.Fatalf("after the burst: %v", ev.Object)
	}
}

// A queue that is partly sent makes room by moving what is left to its
// front rather than growing: bursts that arrive while the consumer is
// half-way through the last one come out whole and in order, the queue
// never holds more room than twice its pending events (plus the channel),
// and an emptied queue keeps at most keptQueueRoom events' room.
func TestWatchQueueReusesItsRoom(t *testing.T) {
	s := newLocalStore()
	w := s.Watch(WatchOptions{Buffer: 2000})
	defer w.Close()
	next := 0
	read := func(n int) {
		t.Helper()
		for range n {
			ev := <-w.C
			if want := fmt.Sprintf("s%05d", next); ev.Object.GetId() != want {
				t.Fatalf("event %d is %s, want %s", next, ev.Object.GetId(), want)
			}
			next++
		}
	}
	created := 0
	for _, burst := range []int{900, 500, 700, 300, 800} {
		createServices(t, s, created, burst)
		created += burst
		w.mu.Lock()
		pending, room := len(w.queue)-w.head, cap(w.queue)
		w.mu.Unlock()
		if room > 2*pending+2*watchChanCap+16 {
			t.Fatalf("after %d events: %d pending in a queue with room for %d", created, pending, room)
		}
		read((created - next) * 2 / 3)
	}
	read(created - next)
	pumpStopped(t, w)
	w.mu.Lock()
	room := cap(w.queue)
	w.mu.Unlock()
	if room > keptQueueRoom {
		t.Fatalf("an emptied queue keeps room for %d events, want at most %d", room, keptQueueRoom)
	}
}

// The cut-off is unchanged: a watcher is cut off with ErrSlowWatcher once
// Buffer events are pending, not before, and its channel is closed.
func TestWatchCutOffAtBuffer(t *testing.T) {
	s := newLocalStore()
	w := s.Watch(WatchOptions{Buffer: 300})
	createServices(t, s, 0, 300)
	if w.Err() != nil {
		t.Fatalf("cut off with %d pending: %v", 300, w.Err())
	}
	createServices(t, s, 300, 1)
	if !errors.Is(w.Err(), ErrSlowWatcher) {
		t.Fatalf("301 pending with a buffer of 300: %v", w.Err())
	}
	n := 0
	timeout := time.After(5 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-w.C:
			if open {
				n++
			}
		case <-timeout:
			t.Fatal("C not closed after the cut-off")
		}
	}
	if n < watchChanCap || n > 300 {
		t.Fatalf("%d events received after the cut-off, want %d to 300", n, watchChanCap)
	}
	pumpStopped(t, w)
}

// Closing a watcher whose queue waits for a reader ends its pump and closes
// C, with no reader at all.
func TestWatchCloseWithQueuedEvents(t *testing.T) {
	s := newLocalStore()
	w := s.Watch(WatchOptions{})
	createServices(t, s, 0, 500)
	w.Close()
	pumpStopped(t, w)
	timeout := time.After(5 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-w.C:
		case <-timeout:
			t.Fatal("C not closed after Close")
		}
	}
	if !errors.Is(w.Err(), ErrWatchClosed) {
		t.Fatalf("ended with %v", w.Err())
	}
}

// A broadcast holds off no reader: while a watcher's Filter is stuck in
// the middle of delivering a write, View returns at once and sees the
// write; a watch started meanwhile waits for the broadcast to end and then
// gets exactly the events after it. (In a 1M create the broadcast of one
// batch held the read lock for up to 0.4 s, and every heartbeat, which
// reads the period from the store, waited on it.)
func TestBroadcastHoldsOffNoReader(t *testing.T) {
	s := newLocalStore()
	entered, release := make(chan struct{}), make(chan struct{})
	var once bool
	slow := s.Watch(WatchOptions{Filter: func(Event) bool {
		if !once {
			once = true
			close(entered)
			<-release
		}
		return true
	}})
	defer slow.Close()
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		createServices(t, s, 0, 1)
	}()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the write never reached the watcher")
	}
	viewed := make(chan bool, 1)
	go func() { s.View(func(tx ReadTx) { viewed <- tx.Service("s00000") != nil }) }()
	select {
	case seen := <-viewed:
		if !seen {
			t.Fatal("View during the broadcast did not see the write being broadcast")
		}
	case <-time.After(2 * time.Second):
		close(release)
		t.Fatal("View waited for a watcher's delivery")
	}
	started := make(chan *Watcher, 1)
	go func() { started <- s.Watch(WatchOptions{}) }()
	select {
	case w := <-started:
		w.Close()
		close(release)
		t.Fatal("a watch started during the broadcast did not wait for it (it could see the event twice)")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-wrote
	var late *Watcher
	select {
	case late = <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("the watch never started after the broadcast")
	}
	defer late.Close()
	createServices(t, s, 1, 1)
	if ev := <-late.C; ev.Object.GetId() != "s00001" {
		t.Fatalf("the watch started during the broadcast got %v first, want the next write (s00001)", ev.Object.GetId())
	}
	if ev := <-slow.C; ev.Object.GetId() != "s00000" {
		t.Fatalf("the slow watcher got %v, want s00000", ev.Object.GetId())
	}
}
