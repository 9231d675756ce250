package controlapi

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// statusWrite is what the orchestrator does while a user works: it writes
// the service's update status, which bumps Meta.Version.
func statusWrite(t *testing.T, srv *Server, id, msg string) func() {
	return func() {
		err := srv.store.Update(context.Background(), func(tx *raftstore.Tx) error {
			svc := proto.Clone(tx.Service(id)).(*api.Service)
			svc.UpdateStatus = &api.UpdateStatus{State: api.UpdateStatus_UPDATING, Message: msg}
			return tx.Update(svc)
		})
		if err != nil {
			t.Errorf("status write: %v", err)
		}
	}
}

func createService(t *testing.T, srv *Server, name string) *api.Service {
	t.Helper()
	spec := validSpec()
	spec.Annotations.Name = name
	resp, err := srv.CreateService(context.Background(), &api.CreateServiceRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetService()
}

// TestRemoveDoesNotConflictWithStatusWrites: a status write that commits
// between a remove's read and its commit does not fail the remove (it did
// for about 0.7 % of removes under 32 concurrent clients).
func TestRemoveDoesNotConflictWithStatusWrites(t *testing.T) {
	srv, race := newTestServer(t)
	ctx := context.Background()
	svc := createService(t, srv, "web")
	race.raceBefore(statusWrite(t, srv, svc.Id, "racing"))
	if _, err := srv.RemoveService(ctx, &api.RemoveServiceRequest{ServiceId: "web"}); err != nil {
		t.Fatalf("remove failed: %v", err)
	}
	if _, err := srv.GetService(ctx, &api.GetServiceRequest{ServiceId: svc.Id}); !errdefs.IsNotFound(err) {
		t.Fatalf("service still there: %v", err)
	}
}

// TestUpdateConflictsOnlyWithSpecChanges: an update based on a read made
// before status writes succeeds, also when a status write races with its
// commit; an update based on a read made before another user's spec change
// is a real conflict.
func TestUpdateConflictsOnlyWithSpecChanges(t *testing.T) {
	srv, race := newTestServer(t)
	ctx := context.Background()
	svc := createService(t, srv, "web")
	read := svc.GetMeta().GetVersion()

	statusWrite(t, srv, svc.Id, "one")() // after the user's read
	race.raceBefore(statusWrite(t, srv, svc.Id, "two"), statusWrite(t, srv, svc.Id, "three"))
	spec := validSpec()
	spec.GetReplicated().Replicas = 5
	resp, err := srv.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: svc.Id, ServiceVersion: read, Spec: spec})
	if err != nil {
		t.Fatalf("update based on a read before status writes: %v", err)
	}
	if got := resp.GetService().GetSpec().GetReplicated().GetReplicas(); got != 5 {
		t.Fatalf("replicas %d", got)
	}
	if got := resp.GetService().GetUpdateStatus().GetMessage(); got != "three" {
		t.Fatalf("the racing status writes were lost: %q", got)
	}

	// Another user's spec change since `read`: a real conflict, not retried.
	spec.GetReplicated().Replicas = 7
	_, err = srv.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: svc.Id, ServiceVersion: read, Spec: spec})
	if !errdefs.IsConflict(err) {
		t.Fatalf("got %v, want a conflict", err)
	}
	cur, _ := srv.GetService(ctx, &api.GetServiceRequest{ServiceId: svc.Id})
	if got := cur.GetService().GetSpec().GetReplicated().GetReplicas(); got != 5 {
		t.Fatalf("a stale update was applied: replicas %d", got)
	}
	// Read again: it works.
	_, err = srv.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: svc.Id, ServiceVersion: cur.GetService().GetMeta().GetVersion(), Spec: spec})
	if err != nil {
		t.Fatalf("update after a fresh read: %v", err)
	}
}

// TestNodeRemoveAndUpdateRaceStatusWrites: node status writes (heartbeats
// marking a node down) do not fail a node update or remove.
func TestNodeRemoveAndUpdateRaceStatusWrites(t *testing.T) {
	srv, race := newTestServer(t)
	ctx := context.Background()
	err := srv.store.Update(ctx, func(tx *raftstore.Tx) error {
		return tx.Create(&api.Node{Id: "node1", Spec: &api.NodeSpec{}, Description: &api.NodeDescription{Hostname: "h1"},
			Status: &api.NodeStatus{State: api.NodeStatus_DOWN}})
	})
	if err != nil {
		t.Fatal(err)
	}
	nodeStatus := func(msg string) func() {
		return func() {
			err := srv.store.Update(ctx, func(tx *raftstore.Tx) error {
				n := proto.Clone(tx.Node("node1")).(*api.Node)
				n.Status.Message = msg
				return tx.Update(n)
			})
			if err != nil {
				t.Errorf("node status write: %v", err)
			}
		}
	}
	got, _ := srv.GetNode(ctx, &api.GetNodeRequest{NodeId: "node1"})
	nodeStatus("after the read")()
	race.raceBefore(nodeStatus("racing"))
	_, err = srv.UpdateNode(ctx, &api.UpdateNodeRequest{NodeId: "node1", NodeVersion: got.GetNode().GetMeta().GetVersion(),
		Spec: &api.NodeSpec{Availability: api.Availability_DRAIN}})
	if err != nil {
		t.Fatalf("node update: %v", err)
	}
	race.raceBefore(nodeStatus("racing again"))
	if _, err := srv.RemoveNode(ctx, &api.RemoveNodeRequest{NodeId: "node1"}); err != nil {
		t.Fatalf("node remove: %v", err)
	}
}
