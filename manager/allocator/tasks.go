package allocator

import (
	"fmt"
	"net/netip"
	"sort"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

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
		Mtu: n.GetMtu(), Internal: n.GetSpec().GetInternal(),
	}
}

// allocateTask gives a NEW task its attachments and endpoint and moves it
// to PENDING; when a network has no free address, the task stays NEW with
// an error naming the network, waiting for an address there.
func (a *Allocator) allocateTask(tx *raftstore.Tx, t *api.Task, ps *passState) error {
	key := preTask + t.Id
	next := proto.Clone(t).(*api.Task)
	cfgs := t.GetSpec().GetNetworks()
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
		if svc := tx.Service(t.GetServiceId()); svc != nil {
			svc, err := a.ensureVIPs(tx, svc, ps)
			if err != nil {
				return err
			}
			if svc.GetEndpoint() != nil {
				next.Endpoint = proto.Clone(svc.Endpoint).(*api.Endpoint)
			}
		}
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

// ensureVIPs gives a VIP-mode service one virtual IP per network of its
// spec and drops the others; it returns the service as it is in tx.
func (a *Allocator) ensureVIPs(tx *raftstore.Tx, svc *api.Service, ps *passState) (*api.Service, error) {
	key := preService + svc.Id
	var want []*api.Network
	if svc.GetSpec().GetEndpoint().GetMode() == api.EndpointSpec_VIP {
		seen := map[string]bool{}
		for _, c := range svc.GetSpec().GetTask().GetNetworks() {
			if n := lookupNetwork(tx.ReadTx, c.GetTarget()); n != nil && !seen[n.Id] && !n.GetSpec().GetIngress() {
				seen[n.Id] = true
				want = append(want, n)
			}
		}
	}
	have := map[string]string{}
	for _, v := range svc.GetEndpoint().GetVirtualIps() {
		have[v.GetNetworkId()] = v.GetAddr()
	}
	h := &holding{version: svc.GetMeta().GetVersion(), addrs: map[string]netip.Addr{}, macs: map[string]bool{}}
	var vips []*api.Endpoint_VirtualIP
	same := len(have) == len(want)
	for _, n := range want {
		if cur, ok := have[n.Id]; ok {
			if addr, ok := parseAddr(cur); ok {
				h.addrs[n.Id] = addr
				vips = append(vips, &api.Endpoint_VirtualIP{NetworkId: n.Id, Addr: cur})
				continue
			}
		}
		same = false
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
	if same && (len(want) == 0 || proto.Equal(svc.GetEndpoint().GetSpec(), svc.GetSpec().GetEndpoint())) {
		return svc, nil
	}
	// Nothing new (a VIP that found no address is still missing): no
	// write, or each write's event would bring another.
	if sameVIPs(vips, svc.GetEndpoint().GetVirtualIps()) && proto.Equal(svc.GetEndpoint().GetSpec(), svc.GetSpec().GetEndpoint()) {
		return svc, nil
	}
	next := proto.Clone(svc).(*api.Service)
	ep := &api.Endpoint{VirtualIps: vips}
	if svc.GetEndpoint() != nil {
		ep.Ports = svc.Endpoint.Ports
	}
	if s := svc.GetSpec().GetEndpoint(); s != nil {
		ep.Spec = proto.Clone(s).(*api.EndpointSpec)
	}
	next.Endpoint = ep
	a.st.set(key, h, ps.now, func(string) {})
	return next, tx.Update(next)
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
