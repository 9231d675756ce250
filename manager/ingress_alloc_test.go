package manager_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/internal/testcluster"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// The routing mesh's allocation end to end, across a leader failover: the
// ingress network made when first needed, a published service's ports (a dynamic one
// from 30000), its VIP and its tasks' attachments on ingress, an ingress
// address on every node, a port refused naming the service, and all
// released when the service goes.
func TestIngressAllocationEndToEnd(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Managers: 3, Workers: 2, NoManagerAgents: true})
	// The harness writes its first objects itself, without an ingress
	// network (as a cluster made before the mesh): the allocator makes one
	// when a service first publishes an ingress port.
	var ingressID string
	spec := &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "web"},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "127.0.0.1:5000/busybox:1", Args: []string{"sleep", "3600"}}},
		Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 2}},
		Endpoint: &api.EndpointSpec{Ports: []*api.PortConfig{{TargetPort: 80, PublishedPort: 8080}, {TargetPort: 81},
			{TargetPort: 82, PublishedPort: 9000, PublishMode: api.PortConfig_HOST}}},
	}
	svc := c.CreateService(spec)
	c.WaitFor("the ingress network", time.Minute, func() error {
		c.View(func(tx raftstore.ReadTx) {
			if n := tx.NetworkByName("ingress"); n != nil && n.GetSpec().GetIngress() {
				ingressID = n.Id
			}
		})
		if ingressID == "" {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	if got := fmt.Sprint(publishedNumbers(svc)); got != "[8080 30000 9000]" {
		t.Fatalf("ports %s", got)
	}
	c.Call("conflicting create", func(ctx context.Context, cl api.ControlClient) error {
		s := proto.Clone(spec).(*api.ServiceSpec)
		s.Annotations.Name = "other"
		s.Endpoint.Ports = s.Endpoint.Ports[:1]
		_, err := cl.CreateService(ctx, &api.CreateServiceRequest{Spec: s})
		if err == nil || !strings.Contains(err.Error(), "port 8080/tcp is already published by service web") {
			return fmt.Errorf("conflicting create: %v", err)
		}
		return nil
	})
	meshed := func(what string) {
		t.Helper()
		c.WaitFor(what, time.Minute, func() error {
			var err error
			c.View(func(tx raftstore.ReadTx) { err = onIngress(tx, svc.Id, ingressID, 2) })
			return err
		})
	}
	meshed("tasks and every node on ingress")
	c.KillLeader()
	c.Call("scale", func(ctx context.Context, cl api.ControlClient) error {
		cur, err := cl.GetService(ctx, &api.GetServiceRequest{ServiceId: svc.Id})
		if err != nil {
			return err
		}
		s := proto.Clone(cur.Service.Spec).(*api.ServiceSpec)
		s.Mode = &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 3}}
		_, err = cl.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: svc.Id, ServiceVersion: cur.Service.Meta.Version, Spec: s})
		return err
	})
	c.WaitFor("3 tasks on ingress", time.Minute, func() error {
		var err error
		c.View(func(tx raftstore.ReadTx) { err = onIngress(tx, svc.Id, ingressID, 3) })
		return err
	})
	c.Call("remove", func(ctx context.Context, cl api.ControlClient) error {
		_, err := cl.RemoveService(ctx, &api.RemoveServiceRequest{ServiceId: svc.Id})
		return err
	})
	c.WaitFor("nodes leave ingress", time.Minute, func() error {
		var err error
		c.View(func(tx raftstore.ReadTx) {
			for _, n := range tx.Nodes() {
				for _, a := range n.GetAttachments() {
					if a.NetworkId == ingressID {
						err = fmt.Errorf("node %s still on ingress", n.Id)
					}
				}
			}
		})
		return err
	})
}

func publishedNumbers(svc *api.Service) []uint32 {
	var out []uint32
	for _, p := range svc.GetEndpoint().GetPorts() {
		out = append(out, p.PublishedPort)
	}
	return out
}

// onIngress checks that n tasks of the service are allocated with an
// ingress attachment and the service's ports, that the service has an
// ingress VIP, that every ready node has an ingress address, and that no
// ingress address is held twice.
func onIngress(tx raftstore.ReadTx, svcID, ingressID string, n int) error {
	seen := map[string]string{}
	hold := func(addr, who string) error {
		if other, ok := seen[addr]; ok {
			return fmt.Errorf("%s held by %s and %s", addr, other, who)
		}
		seen[addr] = who
		return nil
	}
	live := 0
	for _, tk := range tx.TasksByService(svcID) {
		if tk.GetDesiredState() > api.TaskState_RUNNING || tk.GetStatus().GetState() == api.TaskState_NEW {
			continue
		}
		nets := tk.GetNetworks()
		if len(nets) != 1 || nets[0].NetworkId != ingressID || len(nets[0].Addresses) != 1 {
			return fmt.Errorf("task %s attachments %v", tk.Id, nets)
		}
		if len(tk.GetEndpoint().GetPorts()) != 3 {
			return fmt.Errorf("task %s endpoint %v", tk.Id, tk.GetEndpoint())
		}
		if err := hold(nets[0].Addresses[0], "task "+tk.Id); err != nil {
			return err
		}
		live++
	}
	if live != n {
		return fmt.Errorf("%d tasks allocated", live)
	}
	vips := tx.Service(svcID).GetEndpoint().GetVirtualIps()
	if len(vips) != 1 || vips[0].NetworkId != ingressID {
		return fmt.Errorf("vips %v", vips)
	}
	if err := hold(vips[0].Addr, "the VIP"); err != nil {
		return err
	}
	for _, node := range tx.Nodes() {
		if node.GetStatus().GetState() != api.NodeStatus_READY {
			continue
		}
		found := false
		for _, a := range node.GetAttachments() {
			if a.NetworkId == ingressID {
				found = true
				if err := hold(a.Addresses[0], "node "+node.Id); err != nil {
					return err
				}
			}
		}
		if !found {
			return fmt.Errorf("ready node %s has no ingress address", node.Id)
		}
	}
	return nil
}
