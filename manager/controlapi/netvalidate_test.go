package controlapi

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

func createNet(t *testing.T, s *Server, name string, ipam ...*api.IPAMConfig) (*api.Network, error) {
	t.Helper()
	resp, err := s.CreateNetwork(context.Background(), &api.CreateNetworkRequest{Spec: &api.NetworkSpec{
		Annotations: &api.Annotations{Name: name}, Driver: &api.Driver{Name: "overlay"}, Ipam: ipam}})
	return resp.GetNetwork(), err
}

func mustNet(t *testing.T, s *Server, name string, ipam ...*api.IPAMConfig) *api.Network {
	t.Helper()
	n, err := createNet(t, s, name, ipam...)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Networks without --subnet get consecutive /24s of 10.0.0.0/8, skipping
// the ones taken; VNIs from 4096; the gateway is the first host.
func TestNetworkCreateAllocates(t *testing.T) {
	s, _ := newTestServer(t)
	a := mustNet(t, s, "a")
	mustNet(t, s, "b", &api.IPAMConfig{Subnet: "10.0.1.0/24"})
	c := mustNet(t, s, "c")
	if got := a.GetIpam()[0]; got.Subnet != "10.0.0.0/24" || got.Gateway != "10.0.0.1" || got.Range != "10.0.0.0/24" || a.Vni != 4096 {
		t.Fatalf("a: %v vni %d", got, a.Vni)
	}
	if got := c.GetIpam()[0].Subnet; got != "10.0.2.0/24" || c.Vni != 4098 {
		t.Fatalf("c: %s vni %d", got, c.Vni)
	}
	mtu, err := s.CreateNetwork(context.Background(), &api.CreateNetworkRequest{Spec: &api.NetworkSpec{
		Annotations: &api.Annotations{Name: "m"}, Driver: &api.Driver{Name: "overlay", Options: map[string]string{"com.docker.network.driver.mtu": "1400"}}}})
	if err != nil || mtu.Network.Mtu != 1400 {
		t.Fatalf("%v %v", mtu, err)
	}
}

func TestNetworkCreateRefusesOverlapsAndBadSpecs(t *testing.T) {
	s, _ := newTestServer(t)
	mustNet(t, s, "bad1", &api.IPAMConfig{Subnet: "10.77.0.0/24"})
	_, err := createNet(t, s, "bad2", &api.IPAMConfig{Subnet: "10.77.0.128/25"})
	if !errdefs.IsInvalidArgument(err) || !strings.HasPrefix(err.Error(), "subnet 10.77.0.128/25 overlaps 10.77.0.0/24 of network bad1") {
		t.Fatalf("overlap: %v", err)
	}
	err = s.store.Update(context.Background(), func(tx *raftstore.Tx) error {
		return tx.Create(&api.Node{Id: "node1", Description: &api.NodeDescription{Hostname: "h1"}, LocalSubnet: "172.30.0.0/16"})
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = createNet(t, s, "bad3", &api.IPAMConfig{Subnet: "172.30.5.0/24"})
	if err == nil || !strings.Contains(err.Error(), "overlaps 172.30.0.0/16 of the local task subnet of node h1") {
		t.Fatalf("node overlap: %v", err)
	}
	for _, c := range []struct {
		spec *api.NetworkSpec
		want string
	}{
		{&api.NetworkSpec{Annotations: &api.Annotations{Name: "x"}, Driver: &api.Driver{Name: "bridge"}}, "use -d overlay"},
		{&api.NetworkSpec{Annotations: &api.Annotations{Name: "x"}, Driver: &api.Driver{Name: "overlay", Options: map[string]string{"encrypted": ""}}}, "encrypted overlay networks are not supported yet"},
		{&api.NetworkSpec{Annotations: &api.Annotations{Name: "x"}, Ipam: []*api.IPAMConfig{{Subnet: "10.5.0.0/24", Gateway: "10.6.0.1"}}}, "not inside subnet"},
	} {
		if _, err := s.CreateNetwork(context.Background(), &api.CreateNetworkRequest{Spec: c.spec}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
	var n int
	s.store.View(func(tx raftstore.ReadTx) { n = len(tx.Networks()) })
	if n != 1 {
		t.Fatalf("%d networks, want only bad1", n)
	}
}

func TestNetworkCreatePoolExhausted(t *testing.T) {
	s, _ := newTestServer(t)
	err := s.store.Update(context.Background(), func(tx *raftstore.Tx) error {
		c := proto.Clone(firstCluster(tx.ReadTx)).(*api.Cluster)
		c.Spec.DefaultAddressPool, c.Spec.SubnetSize = []string{"10.8.0.0/23"}, 24
		return tx.Update(c)
	})
	if err != nil {
		t.Fatal(err)
	}
	mustNet(t, s, "a")
	if b := mustNet(t, s, "b"); b.Ipam[0].Subnet != "10.8.1.0/24" {
		t.Fatal(b.Ipam)
	}
	_, err = createNet(t, s, "c")
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "the default address pool 10.8.0.0/23 has no free /24 subnet left") {
		t.Fatal(err)
	}
}

func TestServiceNetworksAndNetworkRemoval(t *testing.T) {
	s, _ := newTestServer(t)
	ctx := context.Background()
	app := mustNet(t, s, "appnet", &api.IPAMConfig{Subnet: "10.0.9.0/28"})
	spec := validSpec()
	spec.Task.Networks = []*api.NetworkAttachmentConfig{{Target: "foo"}}
	_, err := s.CreateService(ctx, &api.CreateServiceRequest{Spec: spec})
	wantError(t, err, errdefs.ErrInvalidArgument, "network foo not found: create it with `shoal network create -d overlay foo`")
	spec.Task.Networks = []*api.NetworkAttachmentConfig{{Target: "appnet"}, {Target: app.Id}}
	_, err = s.CreateService(ctx, &api.CreateServiceRequest{Spec: spec})
	wantError(t, err, errdefs.ErrInvalidArgument, "network appnet is attached to the service twice: give each network once")
	spec.Task.Networks = []*api.NetworkAttachmentConfig{{Target: "appnet"}}
	spec.Mode = &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 13}}
	_, err = s.CreateService(ctx, &api.CreateServiceRequest{Spec: spec})
	wantError(t, err, errdefs.ErrInvalidArgument, "network appnet (10.0.9.0/28) has 13 free addresses; service web asks for 13 replicas and a virtual IP")
	spec.Mode = &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 2}}
	resp, err := s.CreateService(ctx, &api.CreateServiceRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Service.Spec.Task.Networks[0].Target; got != app.Id {
		t.Fatalf("target %q, want the ID %s", got, app.Id)
	}
	// The same spec by name again changes nothing.
	upd, err := s.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: "web", Spec: spec})
	if err != nil || upd.Service.SpecVersion != 1 {
		t.Fatalf("%v spec version %d", err, upd.GetService().GetSpecVersion())
	}
	client := validSpec()
	client.Annotations.Name = "client"
	client.Task.Networks = []*api.NetworkAttachmentConfig{{Target: app.Id[:6]}}
	if _, err := s.CreateService(ctx, &api.CreateServiceRequest{Spec: client}); err != nil {
		t.Fatal(err)
	}
	_, err = s.RemoveNetwork(ctx, &api.RemoveNetworkRequest{NetworkId: "appnet"})
	if !errdefs.IsFailedPrecondition(err) || !strings.HasPrefix(err.Error(), "network appnet is in use by service client, web") {
		t.Fatal(err)
	}
	// A task of a removed service still holding an address: the removal
	// is accepted and the network marked pending delete (the allocator
	// deletes it once the task stops): hidden from lists, refused to
	// services and to a new network of its name.
	err = s.store.Update(ctx, func(tx *raftstore.Tx) error {
		for _, svc := range tx.Services() {
			if err := tx.Delete(unversioned(svc)); err != nil {
				return err
			}
		}
		return tx.Create(&api.Task{Id: "t1", ServiceAnnotations: &api.Annotations{Name: "web"}, DesiredState: api.TaskState_RUNNING,
			Status: &api.TaskStatus{State: api.TaskState_RUNNING}, Networks: []*api.NetworkAttachment{{NetworkId: app.Id, Addresses: []string{"10.0.9.2/28"}}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // a second removal is accepted too
		if _, err := s.RemoveNetwork(ctx, &api.RemoveNetworkRequest{NetworkId: "appnet"}); err != nil {
			t.Fatal(err)
		}
	}
	var n *api.Network
	s.store.View(func(tx raftstore.ReadTx) { n = tx.Network(app.Id) })
	if n == nil || !n.PendingDelete {
		t.Fatalf("network %v, want it kept and pending delete", n)
	}
	list, err := s.ListNetworks(ctx, &api.ListNetworksRequest{})
	if err != nil || len(list.Networks) != 0 {
		t.Fatalf("list %v %v, want nothing", list.GetNetworks(), err)
	}
	_, err = s.CreateService(ctx, &api.CreateServiceRequest{Spec: client})
	wantError(t, err, errdefs.ErrInvalidArgument, "network appnet is being removed (the tasks of its removed services are stopping): create a new network for the service")
	_, err = createNet(t, s, "appnet")
	if !errdefs.IsAlreadyExists(err) || !strings.Contains(err.Error(), "network with name appnet already exists: it is being removed") {
		t.Fatal(err)
	}
}

func TestIngressNetworkCannotBeAttached(t *testing.T) {
	s, _ := newTestServer(t)
	_, err := s.CreateNetwork(context.Background(), &api.CreateNetworkRequest{Spec: &api.NetworkSpec{
		Annotations: &api.Annotations{Name: "ingress"}, Ingress: true}})
	if err != nil {
		t.Fatal(err)
	}
	spec := validSpec()
	spec.Task.Networks = []*api.NetworkAttachmentConfig{{Target: "ingress"}}
	_, err = s.CreateService(context.Background(), &api.CreateServiceRequest{Spec: spec})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "ingress network") {
		t.Fatal(err)
	}
}

func TestClusterReadsHideKeysAndOverlaySettingsAreFixed(t *testing.T) {
	s, _ := newTestServer(t)
	ctx := context.Background()
	err := s.store.Update(ctx, func(tx *raftstore.Tx) error {
		c := proto.Clone(firstCluster(tx.ReadTx)).(*api.Cluster)
		c.NetworkKey, c.SecretsKey = []byte("0123456789abcdef0123456789abcdef"), []byte("secret")
		return tx.Update(c)
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetCluster(ctx, &api.GetClusterRequest{})
	if err != nil || got.Cluster.NetworkKey != nil || got.Cluster.SecretsKey != nil {
		t.Fatalf("%v %v", got, err)
	}
	list, _ := s.ListClusters(ctx, &api.ListClustersRequest{})
	if list.Clusters[0].NetworkKey != nil {
		t.Fatal("ListClusters returned the network key")
	}
	spec := got.Cluster.Spec
	spec.DataPathPort = 5000
	_, err = s.UpdateCluster(ctx, &api.UpdateClusterRequest{Spec: spec, ClusterVersion: got.Cluster.Meta.Version})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "data path port is set at swarm init") {
		t.Fatal(err)
	}
	spec.DataPathPort = 0
	spec.DefaultAddressPool = []string{"10.0.0.0/8", "10.1.0.0/16"}
	_, err = s.UpdateCluster(ctx, &api.UpdateClusterRequest{Spec: spec, ClusterVersion: got.Cluster.Meta.Version})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "overlap") {
		t.Fatal(err)
	}
}
