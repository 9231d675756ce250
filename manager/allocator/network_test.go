package allocator

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/internal/storetest"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

func network(id, name, subnet string) *api.Network {
	p := netip.MustParsePrefix(subnet)
	return &api.Network{Id: id, Spec: &api.NetworkSpec{Annotations: &api.Annotations{Name: name}, Internal: true}, Vni: 4100, Mtu: 1400,
		Ipam: []*api.IPAMConfig{{Subnet: subnet, Range: subnet, Gateway: p.Addr().Next().String()}}}
}

func service(id, name string, mode api.EndpointSpec_ResolutionMode, nets ...string) *api.Service {
	s := &api.Service{Id: id, Spec: &api.ServiceSpec{Annotations: &api.Annotations{Name: name}, Task: &api.TaskSpec{},
		Endpoint: &api.EndpointSpec{Mode: mode}}}
	for _, n := range nets {
		s.Spec.Task.Networks = append(s.Spec.Task.Networks, &api.NetworkAttachmentConfig{Target: n, Aliases: []string{name}})
	}
	return s
}

func netTask(id, svc string, nets ...string) *api.Task {
	t := task(id, api.TaskState_NEW)
	t.ServiceId = svc
	t.Spec = &api.TaskSpec{}
	for _, n := range nets {
		t.Spec.Networks = append(t.Spec.Networks, &api.NetworkAttachmentConfig{Target: n, Aliases: []string{"web"}})
	}
	return t
}

// startAllocator runs an allocator until the returned stop (or the test's
// end).
func startAllocator(t *testing.T, store *raftstore.Store, clock clockwork.Clock, q time.Duration) (*Allocator, func()) {
	t.Helper()
	a, err := NewWithConfig(Config{Store: store, Clock: clock, Log: quiet(), Quarantine: q})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return a, stop
}

func update(t *testing.T, s *raftstore.Store, fn func(tx *raftstore.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func setTask(t *testing.T, s *raftstore.Store, id string, change func(*api.Task)) {
	t.Helper()
	update(t, s, func(tx *raftstore.Tx) error {
		tk := proto.Clone(tx.Task(id)).(*api.Task)
		change(tk)
		return tx.Update(tk)
	})
}

func shutdown(tk *api.Task) {
	tk.DesiredState = api.TaskState_SHUTDOWN
	tk.Status = &api.TaskStatus{State: api.TaskState_SHUTDOWN}
}

func addrOf(t *api.Task) string {
	if len(t.GetNetworks()) == 0 || len(t.Networks[0].Addresses) == 0 {
		return ""
	}
	return t.Networks[0].Addresses[0]
}

func pending(s *raftstore.Store, id string) func() bool {
	return func() bool { return taskState(s, id) == api.TaskState_PENDING }
}

func getService(s *raftstore.Store, id string) *api.Service {
	var out *api.Service
	s.View(func(tx raftstore.ReadTx) { out = tx.Service(id) })
	return out
}

// A task on a network gets an address, a MAC and the network's facts,
// and its service's endpoint with the service's VIP, then goes PENDING.
func TestTaskGetsAttachmentAndEndpoint(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store, _ := storetest.New(clock)
	storetest.Seed(t, store, network("net1", "appnet", "10.0.9.0/24"), service("svc", "web", api.EndpointSpec_VIP, "net1"),
		netTask("t1", "svc", "appnet"), task("plain", api.TaskState_NEW))
	startAllocator(t, store, clock, 0)
	storetest.Eventually(t, "t1 pending", pending(store, "t1"))
	storetest.Eventually(t, "plain pending", pending(store, "plain"))
	tk := storetest.Task(store, "t1")
	att := tk.GetNetworks()[0]
	if att.NetworkId != "net1" || att.NetworkName != "appnet" || att.Vni != 4100 || att.Subnet != "10.0.9.0/24" || att.Gateway != "10.0.9.1" ||
		att.Mtu != 1400 || !att.Internal || len(att.Aliases) != 1 || att.Aliases[0] != "web" {
		t.Fatalf("attachment %v", att)
	}
	if !strings.HasPrefix(att.Mac, "02:") || len(att.Mac) != 17 {
		t.Fatalf("MAC %q", att.Mac)
	}
	a := netip.MustParsePrefix(att.Addresses[0])
	if a.Bits() != 24 || a.Addr().String() == "10.0.9.1" || a.Addr().String() == "10.0.9.0" {
		t.Fatalf("address %s", a)
	}
	vips := getService(store, "svc").GetEndpoint().GetVirtualIps()
	if len(vips) != 1 || vips[0].NetworkId != "net1" || vips[0].Addr == att.Addresses[0] {
		t.Fatalf("vips %v, task %s", vips, att.Addresses[0])
	}
	if got := tk.GetEndpoint().GetVirtualIps(); len(got) != 1 || got[0].Addr != vips[0].Addr {
		t.Fatalf("task endpoint %v", tk.GetEndpoint())
	}
	if len(storetest.Task(store, "plain").GetNetworks()) != 0 {
		t.Fatal("a task without networks got one")
	}
}

// Once a /28's 13 addresses are used up (12 tasks and the VIP), the next
// task stays NEW with an error naming the network; a task shut down frees
// its address, which rests in quarantine (5 s on the fake clock) before
// the waiting task gets it.
func TestExhaustionThenRelease(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store, _ := storetest.New(clock)
	objs := []raftstore.Object{network("net1", "appnet", "10.0.9.0/28"), service("svc", "web", api.EndpointSpec_VIP, "net1")}
	for i := range 13 {
		objs = append(objs, netTask(fmt.Sprintf("t%02d", i), "svc", "net1"))
	}
	storetest.Seed(t, store, objs...)
	startAllocator(t, store, clock, 0)
	var held string
	storetest.Eventually(t, "12 pending, t12 held", func() bool {
		n := 0
		for i := range 13 {
			if taskState(store, fmt.Sprintf("t%02d", i)) == api.TaskState_PENDING {
				n++
			} else {
				held = fmt.Sprintf("t%02d", i)
			}
		}
		return n == 12 && storetest.Task(store, held).GetStatus().GetErr() != ""
	})
	st := storetest.Task(store, held).GetStatus()
	if st.State != api.TaskState_NEW || st.Message != "allocation failed" ||
		st.Err != "no free address on network appnet (10.0.9.0/28): all 13 addresses are in use" {
		t.Fatalf("status %v", st)
	}
	victim := "t00"
	if held == victim {
		victim = "t01"
	}
	freed := addrOf(storetest.Task(store, victim))
	setTask(t, store, victim, shutdown)
	storetest.BlockUntil(t, clock, 1) // the held task waits out the quarantine
	if taskState(store, held) != api.TaskState_NEW {
		t.Fatal("a quarantined address was handed out")
	}
	clock.Advance(DefaultQuarantine)
	storetest.Eventually(t, "the held task pending", pending(store, held))
	if got := addrOf(storetest.Task(store, held)); got != freed {
		t.Fatalf("got %s, want the freed %s", got, freed)
	}
}

// A network pending delete goes once the last task holding an address on
// it stops, not before.
func TestPendingDeleteNetworkGoesWhenTasksStop(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store, _ := storetest.New(clock)
	storetest.Seed(t, store, network("net1", "appnet", "10.0.9.0/28"), service("svc", "web", api.EndpointSpec_VIP, "net1"),
		netTask("t1", "svc", "net1"), netTask("t2", "svc", "net1"))
	startAllocator(t, store, clock, 0)
	storetest.Eventually(t, "both pending", func() bool { return pending(store, "t1")() && pending(store, "t2")() })
	update(t, store, func(tx *raftstore.Tx) error {
		if err := tx.Delete(tx.Service("svc")); err != nil {
			return err
		}
		n := proto.Clone(tx.Network("net1")).(*api.Network)
		n.PendingDelete = true
		return tx.Update(n)
	})
	gone := func() bool {
		var n *api.Network
		store.View(func(tx raftstore.ReadTx) { n = tx.Network("net1") })
		return n == nil
	}
	setTask(t, store, "t1", shutdown)
	// The allocator has seen t1 stop when its address is back in the pool.
	storetest.Eventually(t, "t1's address released", func() bool {
		a := 0
		store.View(func(tx raftstore.ReadTx) { a = len(tx.Tasks()) })
		return a == 2
	})
	time.Sleep(100 * time.Millisecond)
	if gone() {
		t.Fatal("the network was deleted while t2 still holds an address on it")
	}
	setTask(t, store, "t2", shutdown)
	storetest.Eventually(t, "the network deleted", gone)
}

// 300 create/remove cycles on a /28: no two live tasks (nor the VIP) ever
// share an address, and no address is reused within its quarantine.
func TestAddressReuseCycles(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store, _ := storetest.New(clock)
	storetest.Seed(t, store, network("net1", "appnet", "10.0.9.0/28"), service("svc", "web", api.EndpointSpec_VIP, "net1"))
	startAllocator(t, store, clock, 0)
	live := map[string]string{} // task -> address
	var order []string
	freedAt := map[string]time.Time{}
	check := func(id string) {
		addr := addrOf(storetest.Task(store, id))
		if addr == "" {
			t.Fatalf("%s has no address", id)
		}
		for other, a := range live {
			if a == addr {
				t.Fatalf("%s got %s, held by live %s", id, addr, other)
			}
		}
		if vip := getService(store, "svc").GetEndpoint().GetVirtualIps(); len(vip) != 1 || vip[0].Addr == addr {
			t.Fatalf("%s got the VIP %s (vips %v)", id, addr, vip)
		}
		if at, ok := freedAt[addr]; ok && clock.Now().Sub(at) < DefaultQuarantine {
			t.Fatalf("%s got %s, freed %v ago", id, addr, clock.Now().Sub(at))
		}
		live[id] = addr
		order = append(order, id)
	}
	for i := range 300 {
		if len(order) >= 8 {
			victim := order[0]
			order = order[1:]
			if i%2 == 0 {
				setTask(t, store, victim, shutdown)
			} else if err := storetest.Remove(store, victim); err != nil {
				t.Fatal(err)
			}
			freedAt[live[victim]] = clock.Now()
			delete(live, victim)
		}
		id := fmt.Sprintf("c%03d", i)
		storetest.Seed(t, store, netTask(id, "svc", "net1"))
		storetest.Eventually(t, id+" pending", pending(store, id))
		check(id)
		clock.Advance(2 * time.Second)
	}
}

// A new leader's allocator rebuilds its pools from the store: it never
// hands out an address that tasks, nodes or VIPs already hold.
func TestRestartKeepsAllocations(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store, _ := storetest.New(clock)
	storetest.Seed(t, store, network("net1", "appnet", "10.0.9.0/28"), service("svc", "web", api.EndpointSpec_VIP, "net1"),
		netTask("a1", "svc", "net1"), netTask("a2", "svc", "net1"), netTask("a3", "svc", "net1"))
	_, stop := startAllocator(t, store, clock, 0)
	for _, id := range []string{"a1", "a2", "a3"} {
		storetest.Eventually(t, id+" pending", pending(store, id))
	}
	setTask(t, store, "a1", func(tk *api.Task) { tk.NodeId = "n1" })
	update(t, store, func(tx *raftstore.Tx) error { return tx.Create(&api.Node{Id: "n1"}) })
	var node *api.Node
	storetest.Eventually(t, "n1 attached", func() bool {
		store.View(func(tx raftstore.ReadTx) { node = tx.Node("n1") })
		return len(node.GetAttachments()) == 1
	})
	stop()
	held := map[string]bool{addrOf(storetest.Task(store, "a1")): true, addrOf(storetest.Task(store, "a2")): true,
		addrOf(storetest.Task(store, "a3")): true, node.Attachments[0].Addresses[0]: true,
		getService(store, "svc").Endpoint.VirtualIps[0].Addr: true}
	if len(held) != 5 {
		t.Fatalf("held %v", held)
	}
	var objs []raftstore.Object
	for i := range 8 {
		objs = append(objs, netTask(fmt.Sprintf("b%d", i), "svc", "net1"))
	}
	storetest.Seed(t, store, objs...)
	startAllocator(t, store, clock, 0)
	for i := range 8 {
		id := fmt.Sprintf("b%d", i)
		storetest.Eventually(t, id+" pending", pending(store, id))
		addr := addrOf(storetest.Task(store, id))
		if held[addr] {
			t.Fatalf("%s got %s, already held", id, addr)
		}
		held[addr] = true
	}
	storetest.Seed(t, store, netTask("full", "svc", "net1"))
	storetest.Eventually(t, "full held", func() bool {
		return strings.Contains(storetest.Task(store, "full").GetStatus().GetErr(), "all 13 addresses are in use")
	})
}

// VIPs: one per network in VIP mode; released when the network leaves the
// spec, the mode becomes dnsrr, or the service is deleted.
func TestVIPsAllocatedAndReleased(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store, _ := storetest.New(clock)
	storetest.Seed(t, store, network("net1", "one", "10.0.1.0/24"), network("net2", "two", "10.0.2.0/24"),
		service("svc", "web", api.EndpointSpec_VIP, "net1", "net2"))
	startAllocator(t, store, clock, 0)
	vips := func() []*api.Endpoint_VirtualIP { return getService(store, "svc").GetEndpoint().GetVirtualIps() }
	storetest.Eventually(t, "two VIPs", func() bool { return len(vips()) == 2 })
	if vips()[0].NetworkId != "net1" || !strings.HasPrefix(vips()[0].Addr, "10.0.1.") || !strings.HasPrefix(vips()[1].Addr, "10.0.2.") {
		t.Fatalf("vips %v", vips())
	}
	update(t, store, func(tx *raftstore.Tx) error {
		svc := proto.Clone(tx.Service("svc")).(*api.Service)
		svc.Spec.Task.Networks = svc.Spec.Task.Networks[1:]
		return tx.Update(svc)
	})
	storetest.Eventually(t, "net1's VIP dropped", func() bool { return len(vips()) == 1 && vips()[0].NetworkId == "net2" })
	update(t, store, func(tx *raftstore.Tx) error {
		svc := proto.Clone(tx.Service("svc")).(*api.Service)
		svc.Spec.Endpoint.Mode = api.EndpointSpec_DNSRR
		return tx.Update(svc)
	})
	storetest.Eventually(t, "dnsrr: no VIP", func() bool { return len(vips()) == 0 })

	// A deleted service's VIP is free again (after quarantine): a /30
	// holds exactly one VIP or one task.
	storetest.Seed(t, store, network("net3", "tiny", "10.0.3.0/30"), service("s3", "tiny", api.EndpointSpec_VIP, "net3"))
	storetest.Eventually(t, "s3 VIP", func() bool { return len(getService(store, "s3").GetEndpoint().GetVirtualIps()) == 1 })
	update(t, store, func(tx *raftstore.Tx) error { return tx.Delete(tx.Service("s3")) })
	storetest.Seed(t, store, service("s4", "rr", api.EndpointSpec_DNSRR, "net3"), netTask("x", "s4", "net3"))
	storetest.BlockUntil(t, clock, 1)
	clock.Advance(DefaultQuarantine)
	storetest.Eventually(t, "x pending on the freed VIP", pending(store, "x"))
	if got := addrOf(storetest.Task(store, "x")); got != "10.0.3.2/30" {
		t.Fatalf("x got %s", got)
	}
}

// A node that runs an allocated task on a network gets an address there,
// dropped when its last such task ends.
func TestNodeAttachments(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store, _ := storetest.New(clock)
	storetest.Seed(t, store, &api.Node{Id: "n1"}, network("net1", "appnet", "10.0.9.0/24"),
		service("svc", "web", api.EndpointSpec_DNSRR, "net1"), netTask("t1", "svc", "net1"), netTask("t2", "svc", "net1"))
	startAllocator(t, store, clock, 0)
	storetest.Eventually(t, "pending", func() bool { return pending(store, "t1")() && pending(store, "t2")() })
	node := func() *api.Node {
		var n *api.Node
		store.View(func(tx raftstore.ReadTx) { n = tx.Node("n1") })
		return n
	}
	if len(node().GetAttachments()) != 0 {
		t.Fatal("attached before any task was placed")
	}
	for _, id := range []string{"t1", "t2"} {
		setTask(t, store, id, func(tk *api.Task) { tk.NodeId = "n1"; tk.Status.State = api.TaskState_ASSIGNED })
	}
	storetest.Eventually(t, "n1 attached", func() bool { return len(node().GetAttachments()) == 1 })
	att := node().Attachments[0]
	if att.NetworkId != "net1" || !strings.HasPrefix(att.Mac, "02:") || att.Subnet != "10.0.9.0/24" {
		t.Fatalf("attachment %v", att)
	}
	for _, id := range []string{"t1", "t2"} {
		if addrOf(storetest.Task(store, id)) == att.Addresses[0] {
			t.Fatalf("node and %s share %s", id, att.Addresses[0])
		}
	}
	setTask(t, store, "t1", shutdown)
	time.Sleep(20 * time.Millisecond)
	if len(node().GetAttachments()) != 1 {
		t.Fatal("detached while t2 still runs there")
	}
	if err := storetest.Remove(store, "t2"); err != nil {
		t.Fatal(err)
	}
	storetest.Eventually(t, "n1 detached", func() bool { return len(node().GetAttachments()) == 0 })
}

// An older cluster without a gossip key gets one.
func TestNetworkKeyCreated(t *testing.T) {
	store, _ := storetest.New(nil)
	storetest.Seed(t, store, &api.Cluster{Id: "c", Spec: &api.ClusterSpec{Annotations: &api.Annotations{Name: "default"}}})
	startAllocator(t, store, nil, 0)
	storetest.Eventually(t, "network key", func() bool {
		var c *api.Cluster
		store.View(func(tx raftstore.ReadTx) { c = tx.Cluster("c") })
		return len(c.GetNetworkKey()) == NetworkKeySize
	})
}

// A task naming a network that does not exist stays NEW with an error,
// and is allocated once the network is created.
func TestMissingNetworkWaits(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store, _ := storetest.New(clock)
	storetest.Seed(t, store, netTask("t1", "svc", "later"))
	startAllocator(t, store, clock, 0)
	storetest.Eventually(t, "t1 held", func() bool {
		return storetest.Task(store, "t1").GetStatus().GetErr() == "network later not found: create it with `shoal network create -d overlay later`"
	})
	storetest.Seed(t, store, network("net9", "later", "10.0.9.0/24"))
	storetest.Eventually(t, "t1 pending", pending(store, "t1"))
}

// A task that gets an address on one network but finds none on the next
// gives the first back: another task can have it at once.
func TestPartialAllocationIsUndone(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store, _ := storetest.New(clock)
	storetest.Seed(t, store, network("netA", "a", "10.0.1.0/30"), network("netB", "b", "10.0.2.0/30"),
		service("svc", "rr", api.EndpointSpec_DNSRR), netTask("t1", "svc", "netB"))
	startAllocator(t, store, clock, 0)
	storetest.Eventually(t, "t1 pending", pending(store, "t1"))
	storetest.Seed(t, store, netTask("t2", "svc", "netA", "netB"))
	storetest.Eventually(t, "t2 held on b", func() bool {
		return strings.HasPrefix(storetest.Task(store, "t2").GetStatus().GetErr(), "no free address on network b (10.0.2.0/30)")
	})
	storetest.Seed(t, store, netTask("t3", "svc", "netA"))
	storetest.Eventually(t, "t3 pending", pending(store, "t3"))
	if got := addrOf(storetest.Task(store, "t3")); got != "10.0.1.2/30" {
		t.Fatalf("t3 got %s", got)
	}
}

// A service whose network has no address left for its VIP is written
// once, not again and again.
func TestVIPExhaustionDoesNotLoop(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store, prop := storetest.New(clock)
	storetest.Seed(t, store, network("netA", "a", "10.0.1.0/30"), service("rr", "rr", api.EndpointSpec_DNSRR, "netA"),
		netTask("t1", "rr", "netA"))
	startAllocator(t, store, clock, 0)
	storetest.Eventually(t, "t1 pending", pending(store, "t1"))
	storetest.Seed(t, store, service("vip", "vip", api.EndpointSpec_VIP, "netA", "netA"))
	time.Sleep(100 * time.Millisecond)
	n := len(prop.Transactions())
	time.Sleep(100 * time.Millisecond)
	if got := len(prop.Transactions()); got != n || got > 5 {
		t.Fatalf("%d then %d transactions: the allocator keeps writing", n, got)
	}
	if len(getService(store, "vip").GetEndpoint().GetVirtualIps()) != 0 {
		t.Fatal("a VIP out of a full network")
	}
}
