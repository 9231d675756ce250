package manager_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/internal/testcluster"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Overlay allocation end to end on the harness: a network, a VIP service
// on it; every running task has its own address, the service its VIP, each
// node running a task its own address; after the leader is killed, the
// new leader's allocator keeps all of them and gives new tasks free ones.
func TestOverlayAllocationSurvivesLeaderFailover(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Managers: 3, Workers: 2, NoManagerAgents: true})
	var netID string
	c.Call("network create", func(ctx context.Context, cl api.ControlClient) error {
		resp, err := cl.CreateNetwork(ctx, &api.CreateNetworkRequest{Spec: &api.NetworkSpec{
			Annotations: &api.Annotations{Name: "appnet"}, Driver: &api.Driver{Name: "overlay"},
			Ipam: []*api.IPAMConfig{{Subnet: "10.0.9.0/27"}}}})
		if err == nil {
			netID = resp.Network.Id
		}
		return err
	})
	spec := &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "web"},
		Task: &api.TaskSpec{Container: &api.ContainerSpec{Image: "127.0.0.1:5000/busybox:1", Args: []string{"sleep", "3600"}},
			Networks: []*api.NetworkAttachmentConfig{{Target: "appnet", Aliases: []string{"web"}}}},
		Mode: &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 4}},
	}
	svc := c.CreateService(spec)
	if got := svc.Spec.Task.Networks[0].Target; got != netID {
		t.Fatalf("target %q, want the network's ID", got)
	}
	check := func(n int) {
		t.Helper()
		c.WaitFor(fmt.Sprintf("%d running tasks with distinct overlay addresses", n), time.Minute, func() error {
			var err error
			c.View(func(tx raftstore.ReadTx) { err = distinct(tx, svc.Id, netID, n) })
			return err
		})
	}
	check(4)
	c.KillLeader()
	c.Call("scale", func(ctx context.Context, cl api.ControlClient) error {
		cur, err := cl.GetService(ctx, &api.GetServiceRequest{ServiceId: svc.Id})
		if err != nil {
			return err
		}
		s := proto.Clone(cur.Service.Spec).(*api.ServiceSpec)
		s.Mode = &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 8}}
		_, err = cl.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: svc.Id, ServiceVersion: cur.Service.Meta.Version, Spec: s})
		return err
	})
	check(8)
}

// distinct checks that n tasks of the service run, each with an address
// on the network, and that no address is held twice by live tasks, the
// service's VIP or nodes' attachments.
func distinct(tx raftstore.ReadTx, svcID, netID string, n int) error {
	seen := map[string]string{}
	hold := func(addr, who string) error {
		if other, ok := seen[addr]; ok {
			return fmt.Errorf("%s held by %s and %s", addr, other, who)
		}
		seen[addr] = who
		return nil
	}
	running := 0
	nodes := map[string]bool{}
	for _, tk := range tx.TasksByService(svcID) {
		if tk.GetDesiredState() > api.TaskState_RUNNING && tk.GetStatus().GetState() > api.TaskState_RUNNING {
			continue
		}
		if len(tk.GetNetworks()) != 1 || tk.Networks[0].NetworkId != netID || len(tk.Networks[0].Addresses) != 1 {
			return fmt.Errorf("task %s attachments %v", tk.Id, tk.GetNetworks())
		}
		if err := hold(tk.Networks[0].Addresses[0], "task "+tk.Id); err != nil {
			return err
		}
		if tk.GetStatus().GetState() == api.TaskState_RUNNING {
			running++
			nodes[tk.NodeId] = true
		}
	}
	if running != n {
		return fmt.Errorf("%d tasks running", running)
	}
	vips := tx.Service(svcID).GetEndpoint().GetVirtualIps()
	if len(vips) != 1 {
		return fmt.Errorf("vips %v", vips)
	}
	if err := hold(vips[0].Addr, "the VIP"); err != nil {
		return err
	}
	for id := range nodes {
		atts := tx.Node(id).GetAttachments()
		if len(atts) != 1 || atts[0].NetworkId != netID {
			return fmt.Errorf("node %s attachments %v", id, atts)
		}
		if err := hold(atts[0].Addresses[0], "node "+id); err != nil {
			return err
		}
	}
	return nil
}
