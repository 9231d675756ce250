package dispatcher

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// The session message carries the cluster's data path port (4789 when
// unset) and gossip key, the down nodes and the data-path addresses of
// other ready nodes, managers first; when a node goes down every session
// gets one new message saying so: at once after a quiet heartbeat period,
// and for a burst of changes, one message per period.
func TestSessionMessageOverlayFields(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	ready := func(id, dp, addr string, role api.NodeRole) *api.Node {
		return &api.Node{Id: id, Role: role, Description: &api.NodeDescription{DataPathAddr: dp},
			Status: &api.NodeStatus{State: api.NodeStatus_READY, Addr: addr}}
	}
	e := newEnv(t,
		&api.Cluster{Id: "c", Spec: &api.ClusterSpec{Annotations: &api.Annotations{Name: "default"}}, NetworkKey: key},
		readyNode("n1"),
		ready("w1", "192.168.5.1", "10.0.0.21", api.NodeRole_WORKER),
		ready("m1", "", "10.0.0.11", api.NodeRole_MANAGER),
		&api.Node{Id: "gone", Status: &api.NodeStatus{State: api.NodeStatus_DOWN, Addr: "10.0.0.99"}})
	msg, s, _, _ := e.open("n1")
	if msg.DataPathPort != DefaultDataPathPort || string(msg.NetworkKey) != string(key) {
		t.Fatalf("port %d key %q", msg.DataPathPort, msg.NetworkKey)
	}
	if !slices.Equal(msg.DownNodes, []string{"gone"}) {
		t.Fatalf("down %v", msg.DownNodes)
	}
	if !slices.Equal(msg.GossipSeeds, []string{"10.0.0.11", "192.168.5.1"}) {
		t.Fatalf("seeds %v", msg.GossipSeeds)
	}
	err := e.store.Update(context.Background(), func(tx *raftstore.Tx) error {
		n := proto.Clone(tx.Node("w1")).(*api.Node)
		n.Status = &api.NodeStatus{State: api.NodeStatus_DOWN}
		return tx.Update(n)
	})
	if err != nil {
		t.Fatal(err)
	}
	// The dispatcher published its first view at start, less than a period
	// ago (the clock has not moved): this change waits for the period.
	select {
	case m := <-s.sent:
		t.Fatalf("a message within a period of the last: %v", m)
	case <-time.After(50 * time.Millisecond):
	}
	e.clock.Advance(period)
	next := s.next(t)
	if !slices.Equal(next.DownNodes, []string{"gone", "w1"}) || !slices.Equal(next.GossipSeeds, []string{"10.0.0.11"}) {
		t.Fatalf("after w1 went down: down %v seeds %v", next.DownNodes, next.GossipSeeds)
	}
	select {
	case m := <-s.sent:
		t.Fatalf("a second message for one change: %v", m)
	case <-time.After(50 * time.Millisecond):
	}
	// A burst: the port changes and w1 comes back; one message says both,
	// a period after the last.
	err = e.store.Update(context.Background(), func(tx *raftstore.Tx) error {
		c := proto.Clone(tx.Cluster("c")).(*api.Cluster)
		c.Spec.DataPathPort = 4800
		return tx.Update(c)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = e.store.Update(context.Background(), func(tx *raftstore.Tx) error {
		n := proto.Clone(tx.Node("w1")).(*api.Node)
		n.Status = &api.NodeStatus{State: api.NodeStatus_READY, Addr: "10.0.0.21"}
		return tx.Update(n)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Store events reach the overlay state on their own goroutine: wait
	// until both wait to be published.
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.d.overlay.mu.Lock()
		p := e.d.overlay.pending
		e.d.overlay.mu.Unlock()
		if p != nil && p.port == 4800 && slices.Equal(p.down, []string{"gone"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the burst is not pending: %+v", p)
		}
		time.Sleep(time.Millisecond)
	}
	e.clock.Advance(period)
	if m := s.next(t); m.DataPathPort != 4800 || !slices.Equal(m.DownNodes, []string{"gone"}) {
		t.Fatalf("after the burst: port %d, down %v", m.DataPathPort, m.DownNodes)
	}
	select {
	case m := <-s.sent:
		t.Fatalf("a second message for one burst: %v", m)
	case <-time.After(50 * time.Millisecond):
	}
	// After a quiet period, a change goes out at once (n1 heartbeats, so
	// that its own session does not expire meanwhile).
	if _, err := e.d.Heartbeat(as(context.Background(), "n1"), &api.HeartbeatRequest{SessionId: msg.SessionId}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(period + period/2)
	err = e.store.Update(context.Background(), func(tx *raftstore.Tx) error {
		n := proto.Clone(tx.Node("w1")).(*api.Node)
		n.Status = &api.NodeStatus{State: api.NodeStatus_DOWN}
		return tx.Update(n)
	})
	if err != nil {
		t.Fatal(err)
	}
	if m := s.next(t); !slices.Equal(m.DownNodes, []string{"gone", "w1"}) {
		t.Fatalf("down %v", m.DownNodes)
	}
}

// A node's new overlay attachment (its ingress address, given when a
// service first publishes a port) reaches its session at once, without a
// heartbeat tick (the fake clock never moves here); another node's change
// sends it nothing.
func TestSessionMessageOnAttachmentChange(t *testing.T) {
	e := newEnv(t, readyNode("n1"), readyNode("n2"))
	_, s, _, _ := e.open("n1")
	att := &api.NetworkAttachment{NetworkId: "ing", Ingress: true, Addresses: []string{"10.0.0.3/24"}}
	setAtts := func(id string) {
		t.Helper()
		err := e.store.Update(context.Background(), func(tx *raftstore.Tx) error {
			n := proto.Clone(tx.Node(id)).(*api.Node)
			n.Attachments = []*api.NetworkAttachment{att}
			return tx.Update(n)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	setAtts("n2")
	select {
	case m := <-s.sent:
		t.Fatalf("n1 told of n2's attachments: %v", m)
	case <-time.After(100 * time.Millisecond):
	}
	setAtts("n1")
	m := s.next(t)
	if len(m.GetNode().GetAttachments()) != 1 || !m.Node.Attachments[0].Ingress {
		t.Fatalf("session message after the node's attachment changed: %v", m.GetNode())
	}
}
