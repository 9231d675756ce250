package allocator

import (
	"fmt"
	"net/netip"
	"sort"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/internal/specs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Task messages.
const (
	msgPending    = "pending task scheduling"
	msgAllocFails = "allocation failed"
)

// lookupNetwork resolves a spec's network reference: an ID (what the
// Control API stores) or, for older specs, a name.
func lookupNetwork(tx raftstore.ReadTx, ref string) *api.Network {
	if n := tx.Network(ref); n != nil {
		return n
	}
	return tx.NetworkByName(ref)
}

// attachment is a holder's place on network n.
func attachment(n *api.Network, p *pool, addr netip.Addr, mac string, aliases []string) *api.NetworkAttachment {
	return &api.NetworkAttachment{
		NetworkId: n.Id, Addresses: []string{p.cidr(addr)}, Aliases: aliases, Mac: mac,
		NetworkName: netName(n), Vni: n.GetVni(), Subnet: p.subnet.String(), Gateway: p.gateway.String(),
		Mtu: n.GetMtu(), Internal: n.GetSpec().GetInternal(), Ingress: n.GetSpec().GetIngress(),
	}
}

// allocateTask gives a NEW task its attachments and endpoint and moves it
// to PENDING; when a network has no free address, the task stays NEW with
// an error naming the network, waiting for an address there.
func (a *Allocator) allocateTask(tx *raftstore.Tx, t *api.Task, ps *passState) error {
	key := preTask + t.Id
	next := proto.Clone(t).(*api.Task)
	// The service first: its ports decide the ingress attachment, and its
	// endpoint (ports, VIPs) goes into the task.
	var svc *api.Service
	if cur := tx.Service(t.GetServiceId()); cur != nil {
		var err error
		if svc, err = a.ensureVIPs(tx, cur, ps); err != nil {
			return err
		}
	}
	cfgs := t.GetSpec().GetNetworks()
	if specs.PublishesIngress(svc.GetEndpoint().GetPorts()) {
		// The ingress attachment comes after the task's own networks:
		// their interfaces keep their names whether or not it publishes.
		n, msg := a.ensureIngress(tx)
		if n == nil {
			a.st.wait("?"+IngressName, key)
			return a.holdTask(tx, next, msg)
		}
		cfgs = append(append([]*api.NetworkAttachmentConfig(nil), cfgs...), &api.NetworkAttachmentConfig{Target: n.Id})
	}
	if len(cfgs) > 0 {
		h := &holding{version: t.GetMeta().GetVersion(), addrs: map[string]netip.Addr{}, macs: map[string]bool{}, node: t.GetNodeId()}
		var atts []*api.NetworkAttachment
		undo := func() {
			for netID, addr := range h.addrs {
				if p := a.st.pools[netID]; p != nil {
					p.unreserve(addr, key) // never written: no quarantine
				}
			}
			for mac := range h.macs {
				delete(a.st.macs, mac)
			}
		}
		for _, c := range cfgs {
			n := lookupNetwork(tx.ReadTx, c.GetTarget())
			if n == nil {
				undo()
				a.st.wait("?"+c.GetTarget(), key)
				return a.holdTask(tx, next, fmt.Sprintf("network %s not found: create it with `shoal network create -d overlay %s`", c.GetTarget(), c.GetTarget()))
			}
			if _, dup := h.addrs[n.Id]; dup {
				continue
			}
			p := a.st.pools[n.Id]
			if p == nil {
				undo()
				a.st.wait(n.Id, key)
				return a.holdTask(tx, next, a.st.poolErr[n.Id])
			}
			addr, wake, ok := p.take(key, ps.now, a.cfg.Quarantine)
			if !ok {
				undo()
				a.st.wait(n.Id, key)
				if !wake.IsZero() {
					ps.wake[key] = wake
				}
				return a.holdTask(tx, next, p.exhausted(ps.now, wake))
			}
			h.addrs[n.Id] = addr
			mac, err := a.newMAC(key)
			if err != nil {
				undo()
				return err
			}
			h.macs[mac] = true
			atts = append(atts, attachment(n, p, addr, mac, c.GetAliases()))
		}
		a.st.set(key, h, ps.now, func(string) {})
		next.Networks = atts
	}
	if svc.GetEndpoint() != nil {
		next.Endpoint = proto.Clone(svc.Endpoint).(*api.Endpoint)
	}
	next.Status = &api.TaskStatus{State: api.TaskState_PENDING, Timestamp: timestamppb.New(ps.now), Message: msgPending}
	return tx.Update(next)
}

// holdTask leaves a task NEW with the error (written once).
func (a *Allocator) holdTask(tx *raftstore.Tx, t *api.Task, msg string) error {
	if t.GetStatus().GetErr() == msg && t.GetStatus().GetMessage() == msgAllocFails {
		return nil
	}
	st := proto.Clone(t.GetStatus()).(*api.TaskStatus)
	if st == nil {
		st = &api.TaskStatus{}
	}
	st.State, st.Err, st.Message = api.TaskState_NEW, msg, msgAllocFails
	t.Status = st
	return tx.Update(t)
}

// ensureVIPs brings a service's endpoint in line with its spec: its ports
// (see portsFor) and, in VIP mode, one virtual IP per network of its spec,
// plus one on the ingress network (last) while it publishes an ingress
// port, whatever its endpoint mode (the mesh balances over it); other VIPs
// are dropped. It returns the service as it is in tx.
func (a *Allocator) ensureVIPs(tx *raftstore.Tx, svc *api.Service, ps *passState) (*api.Service, error) {
	key := preService + svc.Id
	ports, complete := a.portsFor(tx.ReadTx, svc)
	if complete {
		delete(a.st.portWait, svc.Id)
	} else {
		a.st.portWait[svc.Id] = true
	}
	var want []*api.Network
	seen := map[string]bool{}
	if svc.GetSpec().GetEndpoint().GetMode() == api.EndpointSpec_VIP {
		for _, c := range svc.GetSpec().GetTask().GetNetworks() {
			if n := lookupNetwork(tx.ReadTx, c.GetTarget()); n != nil && !seen[n.Id] && !n.GetSpec().GetIngress() {
				seen[n.Id] = true
				want = append(want, n)
			}
		}
	}
	if specs.PublishesIngress(ports) {
		if n, _ := a.ensureIngress(tx); n != nil && !seen[n.Id] {
			want = append(want, n)
		}
	}
	have := map[string]string{}
	for _, v := range svc.GetEndpoint().GetVirtualIps() {
		have[v.GetNetworkId()] = v.GetAddr()
	}
	h := &holding{version: svc.GetMeta().GetVersion(), addrs: map[string]netip.Addr{}, macs: map[string]bool{}}
	var vips []*api.Endpoint_VirtualIP
	for _, n := range want {
		if cur, ok := have[n.Id]; ok {
			if addr, ok := parseAddr(cur); ok {
				h.addrs[n.Id] = addr
				vips = append(vips, &api.Endpoint_VirtualIP{NetworkId: n.Id, Addr: cur})
				continue
			}
		}
		p := a.st.pools[n.Id]
		if p == nil {
			continue
		}
		addr, wake, ok := p.take(key, ps.now, a.cfg.Quarantine)
		if !ok {
			a.log.Warn("no address for a service VIP", "service", svc.GetSpec().GetAnnotations().GetName(), "err", p.exhausted(ps.now, wake))
			a.st.wait(n.Id, key)
			if !wake.IsZero() {
				ps.wake[key] = wake
			}
			continue
		}
		h.addrs[n.Id] = addr
		vips = append(vips, &api.Endpoint_VirtualIP{NetworkId: n.Id, Addr: p.cidr(addr)})
	}
	// Nothing new (a VIP that found no address is still missing): no
	// write, or each write's event would bring another.
	if sameVIPs(vips, svc.GetEndpoint().GetVirtualIps()) && proto.Equal(svc.GetEndpoint().GetSpec(), svc.GetSpec().GetEndpoint()) &&
		samePorts(ports, svc.GetEndpoint().GetPorts()) {
		return svc, nil
	}
	if svc.GetEndpoint() == nil && len(vips) == 0 && len(ports) == 0 && svc.GetSpec().GetEndpoint() == nil {
		return svc, nil
	}
	next := proto.Clone(svc).(*api.Service)
	ep := &api.Endpoint{VirtualIps: vips, Ports: ports}
	if s := svc.GetSpec().GetEndpoint(); s != nil {
		ep.Spec = proto.Clone(s).(*api.EndpointSpec)
	}
	next.Endpoint = ep
	a.st.set(key, h, ps.now, func(string) {})
	return next, tx.Update(next)
}

func samePorts(a, b []*api.PortConfig) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func sameVIPs(a, b []*api.Endpoint_VirtualIP) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// nodeAttachments gives a node an address on each network where it has an
// allocated task, and drops the others.
func (a *Allocator) nodeAttachments(tx *raftstore.Tx, node *api.Node, ps *passState) error {
	key := preNode + node.Id
	want := map[string]bool{}
	for netID, n := range a.st.nodeNets[node.Id] {
		if n > 0 && a.st.pools[netID] != nil && a.st.nets[netID] != nil {
			want[netID] = true
		}
	}
	have := map[string]*api.NetworkAttachment{}
	for _, att := range node.GetAttachments() {
		have[att.GetNetworkId()] = att
	}
	// While a service publishes an ingress port every node serves the
	// mesh: a ready node gets an ingress address; one that is not ready
	// keeps the one it has (no churn while it flaps).
	if in := a.st.ingressID; in != "" && a.st.meshActive() && a.st.pools[in] != nil &&
		(node.GetStatus().GetState() == api.NodeStatus_READY || have[in] != nil) {
		want[in] = true
	}
	same := len(want) == len(have)
	for netID := range want {
		if have[netID] == nil {
			same = false
		}
	}
	if same {
		return nil
	}
	h := &holding{version: node.GetMeta().GetVersion(), addrs: map[string]netip.Addr{}, macs: map[string]bool{}}
	var atts []*api.NetworkAttachment
	for netID := range want {
		if cur := have[netID]; cur != nil {
			if len(cur.GetAddresses()) == 0 {
				continue
			}
			if addr, ok := parseAddr(cur.GetAddresses()[0]); ok {
				h.addrs[netID] = addr
				h.macs[cur.GetMac()] = true
				atts = append(atts, cur)
				continue
			}
		}
		p := a.st.pools[netID]
		addr, wake, ok := p.take(key, ps.now, a.cfg.Quarantine)
		if !ok {
			a.log.Warn("no address for a node on a network", "node", node.Id, "err", p.exhausted(ps.now, wake))
			a.st.wait(netID, key)
			if !wake.IsZero() {
				ps.wake[key] = wake
			}
			continue
		}
		mac, err := a.newMAC(key)
		if err != nil {
			return err
		}
		h.addrs[netID] = addr
		h.macs[mac] = true
		atts = append(atts, attachment(a.st.nets[netID], p, addr, mac, nil))
	}
	sort.Slice(atts, func(i, j int) bool { return atts[i].NetworkId < atts[j].NetworkId })
	if len(atts) == len(have) {
		changed := false
		for _, att := range atts {
			if have[att.NetworkId] != att {
				changed = true
			}
		}
		if !changed {
			return nil
		}
	}
	next := proto.Clone(node).(*api.Node)
	next.Attachments = atts
	a.st.set(key, h, ps.now, func(string) {})
	return tx.Update(next)
}
