package allocator

import (
	"fmt"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/internal/specs"
	"github.com/shoal-project/shoal/manager/internal/storetest"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

func cluster() *api.Cluster {
	return &api.Cluster{Id: "c", Spec: &api.ClusterSpec{Annotations: &api.Annotations{Name: "default"}}, NetworkKey: make([]byte, NetworkKeySize)}
}

func readyNode(id string) *api.Node {
	return &api.Node{Id: id, Status: &api.NodeStatus{State: api.NodeStatus_READY}}
}

// publishing is a service that publishes ports with its endpoint as the
// Control API writes it (allocated ports), or only in its spec when
// allocated is false (a service of an older cluster).
func publishing(id, name string, allocated bool, ports ...*api.PortConfig) *api.Service {
	s := service(id, name, api.EndpointSpec_VIP)
	s.Spec.Endpoint.Ports = ports
	if allocated {
		s.Endpoint = &api.Endpoint{Spec: proto.Clone(s.Spec.Endpoint).(*api.EndpointSpec)}
		for _, p := range ports {
			s.Endpoint.Ports = append(s.Endpoint.Ports, proto.Clone(p).(*api.PortConfig))
		}
	}
	return s
}

func pc(published, target uint32, mode api.PortConfig_PublishMode) *api.PortConfig {
	return &api.PortConfig{PublishedPort: published, TargetPort: target, PublishMode: mode}
}

func removeService(t *testing.T, s *raftstore.Store, id string) {
	t.Helper()
	update(t, s, func(tx *raftstore.Tx) error { return tx.Delete(tx.Service(id)) })
}

func nodeOf(s *raftstore.Store, id string) *api.Node {
	var n *api.Node
	s.View(func(tx raftstore.ReadTx) { n = tx.Node(id) })
	return n
}

func ingressOf(s *raftstore.Store) *api.Network {
	var n *api.Network
	s.View(func(tx raftstore.ReadTx) { n = IngressNetwork(tx) })
	return n
}

func attachedTo(n *api.Node, netID string) bool {
	for _, a := range n.GetAttachments() {
		if a.NetworkId == netID {
			return true
		}
	}
	return false
}

// A cluster without an ingress network gets one (Docker's subnet, the
// lowest free VNI) when a service publishes an ingress port; the service
// gets a VIP there, its tasks an attachment after their own networks and
// its ports in their endpoint, and every ready node an address on it.
func TestIngressCreatedLazilyAndAttached(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store, _ := storetest.New(clock)
	svc := publishing("svc", "web", true, pc(8080, 80, api.PortConfig_INGRESS))
	svc.Spec.Task.Networks = []*api.NetworkAttachmentConfig{{Target: "net1"}}
	storetest.Seed(t, store, cluster(), readyNode("n1"), readyNode("n2"), &api.Node{Id: "down", Status: &api.NodeStatus{State: api.NodeStatus_DOWN}},
		network("net1", "appnet", "10.0.9.0/24"), svc, netTask("t1", "svc", "net1"))
	startAllocator(t, store, clock, 0)
	storetest.Eventually(t, "t1 pending", pending(store, "t1"))
	in := ingressOf(store)
	if in == nil || netName(in) != "ingress" || in.Ipam[0].Subnet != "10.0.0.0/24" || in.Ipam[0].Gateway != "10.0.0.1" || in.Vni != FirstVNI ||
		in.Spec.Driver.GetName() != "overlay" {
		t.Fatalf("ingress network %v", in)
	}
	tk := storetest.Task(store, "t1")
	if len(tk.Networks) != 2 || tk.Networks[0].NetworkId != "net1" || tk.Networks[1].NetworkId != in.Id || tk.Networks[1].Vni != FirstVNI ||
		tk.Networks[0].Ingress || !tk.Networks[1].Ingress { // the node agent finds the mesh's network by this flag
		t.Fatalf("task networks %v", tk.Networks)
	}
	if p := tk.GetEndpoint().GetPorts(); len(p) != 1 || p[0].PublishedPort != 8080 {
		t.Fatalf("task endpoint %v", tk.Endpoint)
	}
	vips := getService(store, "svc").GetEndpoint().GetVirtualIps()
	if len(vips) != 2 || vips[0].NetworkId != "net1" || vips[1].NetworkId != in.Id {
		t.Fatalf("vips %v", vips)
	}
	storetest.Eventually(t, "every ready node on ingress", func() bool {
		return attachedTo(nodeOf(store, "n1"), in.Id) && attachedTo(nodeOf(store, "n2"), in.Id)
	})
	if attachedTo(nodeOf(store, "down"), in.Id) {
		t.Fatal("a down node got an ingress address")
	}
	for _, a := range nodeOf(store, "n1").Attachments {
		if a.NetworkId == in.Id && !a.Ingress {
			t.Fatalf("the node's ingress attachment is not flagged ingress: %v", a)
		}
	}
	// A node that becomes ready joins the mesh.
	update(t, store, func(tx *raftstore.Tx) error {
		n := proto.Clone(tx.Node("down")).(*api.Node)
		n.Status.State = api.NodeStatus_READY
		return tx.Update(n)
	})
	storetest.Eventually(t, "new ready node on ingress", func() bool { return attachedTo(nodeOf(store, "down"), in.Id) })
	seen := map[string]bool{vips[1].Addr: true, tk.Networks[1].Addresses[0]: true}
	for _, id := range []string{"n1", "n2", "down"} {
		for _, a := range nodeOf(store, id).Attachments {
			if seen[a.Addresses[0]] {
				t.Fatalf("address %s given twice", a.Addresses[0])
			}
			seen[a.Addresses[0]] = true
		}
	}
}

// The ingress network of a new cluster is 10.0.0.0/24 with VNI 4096; when
// that subnet overlaps, or the pool does not hold it, the pool's first
// free block; a later network gets the next VNI.
func TestNewIngressNetworkSubnet(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pool   []string
		size   uint32
		local  string
		subnet string
	}{
		{"default", nil, 0, "", "10.0.0.0/24"},
		{"default with /16 blocks", nil, 16, "", "10.0.0.0/24"},
		{"overlap", nil, 0, "10.0.0.0/16", "10.1.0.0/24"},
		{"other pool", []string{"172.20.0.0/16"}, 26, "", "172.20.0.0/26"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, _ := storetest.New(nil)
			c := cluster()
			c.Spec.DefaultAddressPool, c.Spec.SubnetSize = tc.pool, tc.size
			storetest.Seed(t, store, c, &api.Node{Id: "n", LocalSubnet: tc.local})
			update(t, store, func(tx *raftstore.Tx) error {
				n, err := NewIngressNetwork(tx.ReadTx, "in")
				if err != nil {
					return err
				}
				if n.Ipam[0].Subnet != tc.subnet || n.Vni != FirstVNI || !n.Spec.Ingress || netName(n) != IngressName {
					return fmt.Errorf("ingress %v", n)
				}
				if err := tx.Create(n); err != nil {
					return err
				}
				other := &api.Network{Id: "o", Spec: &api.NetworkSpec{Annotations: &api.Annotations{Name: "o"}}}
				if err := AllocateNetwork(tx.ReadTx, other, specs.NetworkParams{}); err != nil {
					return err
				}
				if other.Vni != FirstVNI+1 || other.Ipam[0].Subnet == tc.subnet {
					return fmt.Errorf("next network %v", other)
				}
				return nil
			})
		})
	}
}

// When the last service publishing an ingress port goes, the nodes'
// ingress addresses are released; host-mode ports need no ingress.
func TestIngressReleasedWithLastPublisher(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store, _ := storetest.New(clock)
	storetest.Seed(t, store, cluster(), readyNode("n1"), readyNode("n2"),
		publishing("a", "a", true, pc(8080, 80, api.PortConfig_INGRESS)),
		publishing("b", "b", true, pc(8081, 80, api.PortConfig_INGRESS)),
		publishing("h", "h", true, pc(9000, 80, api.PortConfig_HOST)))
	startAllocator(t, store, clock, 0)
	storetest.Eventually(t, "ingress", func() bool { return ingressOf(store) != nil })
	in := ingressOf(store).Id
	storetest.Eventually(t, "nodes attached", func() bool { return attachedTo(nodeOf(store, "n1"), in) && attachedTo(nodeOf(store, "n2"), in) })
	if len(getService(store, "h").GetEndpoint().GetVirtualIps()) != 0 {
		t.Fatal("a host-mode service got an ingress VIP")
	}
	removeService(t, store, "a")
	time.Sleep(30 * time.Millisecond)
	if !attachedTo(nodeOf(store, "n1"), in) {
		t.Fatal("released while b still publishes")
	}
	// b stops publishing in ingress mode (the Control API rewrites its ports).
	update(t, store, func(tx *raftstore.Tx) error {
		b := proto.Clone(tx.Service("b")).(*api.Service)
		b.Spec.Endpoint.Ports[0].PublishMode = api.PortConfig_HOST
		b.Endpoint.Spec = proto.Clone(b.Spec.Endpoint).(*api.EndpointSpec)
		b.Endpoint.Ports[0].PublishMode = api.PortConfig_HOST
		return tx.Update(b)
	})
	storetest.Eventually(t, "nodes released", func() bool {
		return !attachedTo(nodeOf(store, "n1"), in) && !attachedTo(nodeOf(store, "n2"), in)
	})
	storetest.Eventually(t, "b's ingress VIP released", func() bool { return len(getService(store, "b").GetEndpoint().GetVirtualIps()) == 0 })
}

// A service whose spec changed without its ports (the orchestrator's
// rollback swaps the spec; an older cluster never allocated them) gets
// its ports from the allocator: fixed ones, dynamic ones from 30000, and a
// port another service holds is left out until it frees.
func TestAllocatorAllocatesStalePorts(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store, _ := storetest.New(clock)
	old := publishing("old", "old", false, pc(0, 80, api.PortConfig_INGRESS), pc(8080, 81, api.PortConfig_INGRESS))
	taker := publishing("taker", "taker", true, pc(9090, 80, api.PortConfig_INGRESS))
	rolled := publishing("rolled", "rolled", true, pc(7070, 80, api.PortConfig_INGRESS))
	// The orchestrator rolled it back to a spec publishing 9090 and 7071.
	rolled.Spec.Endpoint.Ports = []*api.PortConfig{pc(9090, 80, api.PortConfig_INGRESS), pc(7071, 80, api.PortConfig_INGRESS)}
	storetest.Seed(t, store, cluster(), readyNode("n1"), old, taker, rolled)
	startAllocator(t, store, clock, 0)
	ports := func(id string) string {
		var out []string
		for _, p := range getService(store, id).GetEndpoint().GetPorts() {
			out = append(out, fmt.Sprintf("%d:%d", p.PublishedPort, p.TargetPort))
		}
		return fmt.Sprint(out)
	}
	storetest.Eventually(t, "old's ports", func() bool { return ports("old") == "[30000:80 8080:81]" })
	storetest.Eventually(t, "rolled's free port", func() bool { return ports("rolled") == "[7071:80]" })
	removeService(t, store, "taker")
	storetest.Eventually(t, "rolled's port once freed", func() bool { return ports("rolled") == "[9090:80 7071:80]" })
}

// A new swarm's ingress network is made with the cluster (see
// manager.Bootstrap); this checks the store-level half: NewIngressNetwork
// refuses a name taken by another network.
func TestNewIngressNetworkNameTaken(t *testing.T) {
	store, _ := storetest.New(nil)
	storetest.Seed(t, store, cluster(), network("x", IngressName, "10.0.5.0/24"))
	store.View(func(tx raftstore.ReadTx) {
		if _, err := NewIngressNetwork(tx, "in"); err == nil {
			t.Fatal("no error")
		}
	})
}
