package worker

import (
	"context"
	"errors"
	"slices"
	"testing"

	"google.golang.org/grpc"

	api "github.com/shoal-project/shoal/proto"
)

// noExec is an executor the agent never calls in these tests.
type noExec struct{}

func (noExec) Describe(context.Context) (*api.NodeDescription, error) {
	return nil, errors.New("unused")
}
func (noExec) Controller(*api.Task, Dependencies) (Controller, error) {
	return nil, errors.New("unused")
}
func (noExec) Tasks(context.Context) ([]string, error) { return nil, nil }

// The node learns role changes from the agent's sessions as events: every
// session message with the node object or the managers reaches
// OnNodeUpdate, with a copy of the node and the managers now known.
func TestSessionMessagesPublishNodeUpdates(t *testing.T) {
	var got []NodeUpdate
	a, err := New(Config{
		NodeID: "n1", Managers: []string{"m1:4242"}, DataDir: t.TempDir(), Executor: noExec{},
		Dial:         func(context.Context, string) (*grpc.ClientConn, error) { return nil, errors.New("unused") },
		OnNodeUpdate: func(u NodeUpdate) { got = append(got, u) },
	})
	if err != nil {
		t.Fatal(err)
	}
	peers := []*api.WeightedPeer{{Peer: &api.Peer{Addr: "m1:4242"}, Weight: 1}, {Peer: &api.Peer{Addr: "m2:4242"}, Weight: 1}}
	worker := &api.Node{Id: "n1", Spec: &api.NodeSpec{DesiredRole: api.NodeRole_WORKER}}
	a.applySessionMessage(&api.SessionMessage{Node: worker, Managers: peers})
	a.applySessionMessage(&api.SessionMessage{RootCa: []byte("pem")}) // nothing for the node: no update
	promoted := &api.Node{Id: "n1", Spec: &api.NodeSpec{DesiredRole: api.NodeRole_MANAGER}}
	a.applySessionMessage(&api.SessionMessage{Node: promoted})

	if len(got) != 2 {
		t.Fatalf("%d updates, want 2: %v", len(got), got)
	}
	if got[0].Node.GetSpec().GetDesiredRole() != api.NodeRole_WORKER || !slices.Equal(got[0].Managers, []string{"m1:4242", "m2:4242"}) {
		t.Fatalf("first update %v", got[0])
	}
	if got[1].Node.GetSpec().GetDesiredRole() != api.NodeRole_MANAGER || len(got[1].Managers) != 2 {
		t.Fatalf("second update %v", got[1])
	}
	// The update is the subscriber's: changing it changes nothing in the agent.
	got[1].Node.Spec.DesiredRole = api.NodeRole_WORKER
	if a.Node().GetSpec().GetDesiredRole() != api.NodeRole_MANAGER {
		t.Fatal("the update shares the agent's node object")
	}
}

// Every session message reaches OnSession, for the overlay's settings.
func TestSessionMessagesReachOnSession(t *testing.T) {
	var got []*api.SessionMessage
	a, err := New(Config{
		NodeID: "n1", Managers: []string{"m1:4242"}, DataDir: t.TempDir(), Executor: noExec{},
		Dial:      func(context.Context, string) (*grpc.ClientConn, error) { return nil, errors.New("unused") },
		OnSession: func(m *api.SessionMessage) { got = append(got, m) },
	})
	if err != nil {
		t.Fatal(err)
	}
	a.applySessionMessage(&api.SessionMessage{DataPathPort: 4790, NetworkKey: []byte("k"), DownNodes: []string{"n3"}, GossipSeeds: []string{"192.0.2.2"}})
	a.applySessionMessage(&api.SessionMessage{RootCa: []byte("pem")})
	if len(got) != 2 || got[0].GetDataPathPort() != 4790 || got[0].GetDownNodes()[0] != "n3" {
		t.Fatalf("OnSession got %v", got)
	}
}
