package controlapi

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/specs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// networkServices names the services whose spec uses network n.
func networkServices(tx raftstore.ReadTx, n *api.Network) []string {
	set := map[string]bool{}
	addServiceUsers(tx, n, set)
	return slices.Sorted(maps.Keys(set))
}

func addServiceUsers(tx raftstore.ReadTx, n *api.Network, set map[string]bool) {
	for _, svc := range tx.Services() {
		for _, a := range svc.GetSpec().GetTask().GetNetworks() {
			if a.Target == n.Id || a.Target == networkName(n) {
				set[serviceName(svc)] = true
			}
		}
	}
}

// networkUsers names the services whose spec uses network n, and those of
// tasks that still hold an address on it.
func networkUsers(tx raftstore.ReadTx, n *api.Network) []string {
	set := map[string]bool{}
	addServiceUsers(tx, n, set)
	for _, t := range tx.Tasks() {
		if !liveTask(t) {
			continue
		}
		for _, a := range t.GetNetworks() {
			if a.GetNetworkId() != n.Id {
				continue
			}
			name := t.GetServiceAnnotations().GetName()
			if svc := tx.Service(t.GetServiceId()); svc != nil {
				name = serviceName(svc)
			}
			if name == "" {
				name = "of task " + t.Id
			}
			set[name] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// liveTask reports whether a task still holds its network addresses (the
// allocator's rule): not both its state and desired state past RUNNING.
func liveTask(t *api.Task) bool {
	return t.GetStatus().GetState() <= api.TaskState_RUNNING || t.GetDesiredState() <= api.TaskState_RUNNING
}

// resolveNetworks checks a service spec's networks (each exists, once, and
// is not the ingress network) and stores their IDs as targets.
func resolveNetworks(tx raftstore.ReadTx, spec *api.ServiceSpec) error {
	seen := map[string]bool{}
	for _, c := range spec.GetTask().GetNetworks() {
		n, err := raftstore.Lookup(tx, raftstore.KindNetwork, c.GetTarget(), networkName)
		if errdefs.IsNotFound(err) {
			return errdefs.InvalidArgument("network %s not found: create it with `shoal network create -d overlay %s`", c.GetTarget(), c.GetTarget())
		}
		if err != nil {
			return err
		}
		if n.GetSpec().GetIngress() {
			return errdefs.InvalidArgument("network %s is the ingress network: services cannot be attached to it explicitly", networkName(n))
		}
		if n.GetPendingDelete() {
			return errdefs.InvalidArgument("network %s is being removed (the tasks of its removed services are stopping): create a new network for the service", networkName(n))
		}
		if seen[n.Id] {
			return errdefs.InvalidArgument("network %s is attached to the service twice: give each network once", networkName(n))
		}
		seen[n.Id] = true
		c.Target = n.Id
	}
	return nil
}

// checkNetworkCapacity refuses a new service whose replicas (and VIP)
// cannot all get an address on one of its networks.
func checkNetworkCapacity(tx raftstore.ReadTx, spec *api.ServiceSpec) error {
	var replicas uint64
	switch m := spec.GetMode().(type) {
	case *api.ServiceSpec_Replicated:
		replicas = m.Replicated.GetReplicas()
	case *api.ServiceSpec_ReplicatedJob:
		replicas = m.ReplicatedJob.GetMaxConcurrent()
		if replicas == 0 {
			replicas = m.ReplicatedJob.GetTotalCompletions()
		}
	default:
		return nil
	}
	vip := spec.GetEndpoint().GetMode() == api.EndpointSpec_VIP
	nets := spec.GetTask().GetNetworks()
	if len(nets) == 0 || replicas == 0 {
		return nil
	}
	held := heldAddresses(tx)
	for _, c := range nets {
		n := tx.Network(c.GetTarget())
		if n == nil || len(n.GetIpam()) == 0 {
			continue
		}
		ipam := n.Ipam[0]
		sub, err1 := netip.ParsePrefix(ipam.GetSubnet())
		rng, err2 := netip.ParsePrefix(ipam.GetRange())
		gw, err3 := netip.ParseAddr(ipam.GetGateway())
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		free := specs.UsableAddrs(sub, rng, gw) - held[n.Id]
		need, what := replicas, ""
		if vip {
			need++
			what = " and a virtual IP"
		}
		if uint64(max(free, 0)) < need {
			return errdefs.InvalidArgument("network %s (%s) has %d free addresses; service %s asks for %d replicas%s",
				networkName(n), sub, max(free, 0), spec.GetAnnotations().GetName(), replicas, what)
		}
	}
	return nil
}

// heldAddresses counts per network the addresses held in the store: live
// tasks', nodes' and services' VIPs.
func heldAddresses(tx raftstore.ReadTx) map[string]int {
	held := map[string]int{}
	for _, t := range tx.Tasks() {
		if liveTask(t) {
			for _, a := range t.GetNetworks() {
				held[a.GetNetworkId()]++
			}
		}
	}
	for _, n := range tx.Nodes() {
		for _, a := range n.GetAttachments() {
			held[a.GetNetworkId()]++
		}
	}
	for _, svc := range tx.Services() {
		for _, v := range svc.GetEndpoint().GetVirtualIps() {
			held[v.GetNetworkId()]++
		}
	}
	return held
}

// inUse is the error of removing a network in use.
func inUse(n *api.Network, users []string) error {
	return errdefs.FailedPrecondition("network %s is in use by service %s: remove them from the network first (`shoal service update --network-rm %s`)",
		networkName(n), joinNames(users), networkName(n))
}
