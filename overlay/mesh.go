package overlay

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

// The routing mesh (ingress/mesh through Config.Mesh), on every node:
//
//   - the node's own attachment on the ingress network (Node.attachments,
//     given by SetNode) becomes a veth from the node's namespace into the
//     ingress network's bridge, named LinkPrefix+"-ing", with the node's
//     address and MAC, localhost routing enabled on it; the node publishes a
//     node entry {Key "node:"+NodeID, IP, MAC, VTEP} on the ingress
//     network so every node programs it as a peer and knows it as an
//     ingress node for the return paths;
//   - entries on the ingress network carry the ingress-mode ports of their
//     task (Entry.Ports); every node serves each (protocol, published port)
//     with the serving entries' addresses as backends (draining ones keep
//     the port, refused, with no backend);
//   - the local serving tasks' host-mode ports are served with the local
//     task only (its node-local bridge address given by SetHostAddr, else
//     its first overlay address);
//   - every local task on the ingress network gets a return path to every
//     node's ingress address (ApplyReturn), kept up to date as nodes come
//     and go.
//
// All of it runs in the programming loop (program), serialized by progMu;
// the node attachment itself in syncNode under opMu (the datapath life of
// networks).

// NodeEntryPrefix starts the key of a node's own entry on the ingress
// network.
const NodeEntryPrefix = "node:"

type meshState struct {
	// under a.mu
	nodeWant  *attachment           // the node's ingress attachment the managers gave
	nodeHave  *attachment           // the one in place
	serving   map[string]bool       // local task ID -> serving (host-mode ports)
	hostAddrs map[string]netip.Addr // local task ID -> node-local bridge address
	warned    bool                  // "no mesh library" logged
	// pendingAdopt: live tasks a previous daemon attached, not re-attached
	// yet -> whether they were serving (meshstate.go)
	pendingAdopt map[string]bool

	// under progMu
	applPorts []MeshPort            // what Apply was last given (at start: what the previous daemon gave, meshstate.go)
	adopted   []MeshPort            // the previous daemon's ports, kept until the view is whole
	meshOn    bool                  // the table may be in place (true at start: a previous daemon's is removed if no port is wanted)
	settled   bool                  // the view is whole (meshSettled)
	readyAt   time.Time             // when meshSettled first found the gossip joined and the tasks re-attached
	returns   map[string]MeshReturn // task ID -> its return path
	// resyncAfter: the last task the previous resync reapplied (program)
	resyncAfter string
	// meshHeld: backends that left the published ports while draining;
	// their flows are flushed once they are gone (settleGone)
	meshHeld []netip.Addr

	startedAt time.Time // under a.mu: when Start ran
}

func newMeshState() meshState {
	return meshState{serving: map[string]bool{}, hostAddrs: map[string]netip.Addr{}, returns: map[string]MeshReturn{}, meshOn: true,
		pendingAdopt: map[string]bool{}}
}

// hostNetns is the namespace path the node's ingress veth goes into.
func (a *Agent) hostNetns() string {
	if a.cfg.HostNetns != "" {
		return a.cfg.HostNetns
	}
	return "/proc/self/ns/net"
}

// nodeIfName is the node's interface on the ingress network.
func (a *Agent) nodeIfName() string { return a.cfg.LinkPrefix + "-ing" }

// SetNode takes the node's object from the managers: its attachment on the
// ingress network (Node.attachments with Ingress set) is made, changed or
// removed. Calls must not be concurrent with Close being done; safe for
// concurrent use otherwise. It does netlink work: call it off the session
// goroutine.
func (a *Agent) SetNode(n *api.Node) {
	var want *attachment
	for _, na := range n.GetAttachments() {
		if !na.GetIngress() {
			continue
		}
		at, err := attachmentOf(na, 0)
		if err != nil {
			a.cfg.Log.Warn("overlay: ignoring the node's malformed ingress attachment", "network", na.GetNetworkId(), "err", err)
			continue
		}
		at.ifName, at.ingress = a.nodeIfName(), true
		want = &at
		break
	}
	a.mu.Lock()
	a.nodeWant = want
	a.mu.Unlock()
	a.syncNode()
	a.kick()
}

func sameAttachment(x, y *attachment) bool {
	return x.net == y.net && x.addr == y.addr && x.mac.String() == y.mac.String() && x.ifName == y.ifName
}

// syncNode makes the node's ingress attachment what SetNode last asked;
// idempotent (the resync calls it to repair).
func (a *Agent) syncNode() {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.syncNodeLocked()
}

// syncNodeLocked is syncNode with opMu held.
func (a *Agent) syncNodeLocked() {
	a.mu.Lock()
	want, have, dp, closed := a.nodeWant, a.nodeHave, a.dp, a.closed
	a.mu.Unlock()
	if closed || want == nil && have == nil {
		return
	}
	key := NodeEntryPrefix + a.cfg.NodeID
	if have != nil && (want == nil || !sameAttachment(have, want)) {
		a.withdraw(key)
		if err := dp.DetachTask(have.net.ID, a.hostNetns(), have.ifName); err != nil {
			a.cfg.Log.Warn("overlay: removing the node's ingress interface failed", "network", have.net.ID, "err", err)
		}
		a.mu.Lock()
		a.nodeHave = nil
		a.mu.Unlock()
		if err := a.removeJSON(nodeRecordFile); err != nil {
			a.cfg.Log.Warn("overlay: removing the record of the node's ingress attachment failed", "err", err)
		}
		if !a.networkInUse(have.net.ID) {
			if err := dp.RemoveNetwork(have.net.ID); err != nil {
				a.cfg.Log.Warn("overlay: removing the ingress network failed", "network", have.net.ID, "err", err)
			}
		}
	}
	if want == nil {
		return
	}
	if err := dp.EnsureNetwork(want.net); err != nil {
		a.cfg.Log.Warn("overlay: the ingress network cannot be made; retrying at the next resync", "network", want.net.ID, "err", err)
		return
	}
	if err := dp.AttachTask(want.net.ID, a.hostNetns(), want.ifName, want.addr, want.mac); err != nil {
		a.cfg.Log.Warn("overlay: the node's ingress interface cannot be made; retrying at the next resync", "network", want.net.ID, "err", err)
		return
	}
	if a.cfg.Mesh != nil {
		if err := a.cfg.Mesh.EnableLocalhost(a.cfg.HostNetns, want.ifName); err != nil {
			a.cfg.Log.Warn("overlay: published ports will not answer on 127.0.0.1", "if", want.ifName, "err", err)
		}
	}
	if have == nil || !sameAttachment(have, want) {
		a.saveNodeRecord(want)
	}
	e := Entry{Network: want.net.ID, Key: key, Owner: a.cfg.NodeID, IP: want.addr.Addr().String(),
		MAC: want.mac.String(), VTEP: a.cfg.DataPathAddr.String()}
	a.mu.Lock()
	a.nodeHave = want
	cur := a.published[key]
	a.published[key] = []Entry{e}
	g := a.gossip
	a.mu.Unlock()
	if g != nil && (len(cur) != 1 || !slices.EqualFunc(cur, []Entry{e}, sameEntry)) {
		g.Publish(e)
	}
}

func sameEntry(x, y Entry) bool {
	return x.Network == y.Network && x.Key == y.Key && x.IP == y.IP && x.MAC == y.MAC && x.VTEP == y.VTEP
}

// SetHostAddr gives a local task's node-local bridge address (eth0): the
// backend of its host-mode published ports. Without it the task's first
// overlay address is used.
func (a *Agent) SetHostAddr(taskID string, addr netip.Addr) {
	a.mu.Lock()
	a.hostAddrs[taskID] = addr
	a.mu.Unlock()
	a.kick()
}

func (a *Agent) forgetHostAddr(taskID string) {
	a.mu.Lock()
	delete(a.hostAddrs, taskID)
	a.mu.Unlock()
}

// portProto is the mesh's name of a port's protocol; "" for one it does
// not serve (SCTP).
func portProto(p api.PortConfig_Protocol) string {
	switch p {
	case api.PortConfig_TCP:
		return "tcp"
	case api.PortConfig_UDP:
		return "udp"
	}
	return ""
}

// ingressPorts are the task's allocated ingress-mode ports, as gossiped.
func ingressPorts(t *api.Task) []PortEntry {
	var out []PortEntry
	for _, p := range t.GetEndpoint().GetPorts() {
		proto := portProto(p.GetProtocol())
		if p.GetPublishMode() != api.PortConfig_INGRESS || proto == "" || p.GetPublishedPort() == 0 || p.GetTargetPort() == 0 {
			continue
		}
		out = append(out, PortEntry{Proto: proto, Published: uint16(p.GetPublishedPort()), Target: uint16(p.GetTargetPort()),
			Masquerade: p.GetMasquerade()})
	}
	return out
}

// hostPorts are the task's host-mode ports.
func hostPorts(t *api.Task) []PortEntry {
	var out []PortEntry
	for _, p := range t.GetEndpoint().GetPorts() {
		proto := portProto(p.GetProtocol())
		if p.GetPublishMode() != api.PortConfig_HOST || proto == "" || p.GetPublishedPort() == 0 || p.GetTargetPort() == 0 {
			continue
		}
		out = append(out, PortEntry{Proto: proto, Published: uint16(p.GetPublishedPort()), Target: uint16(p.GetTargetPort()),
			Masquerade: p.GetMasquerade(), Host: true})
	}
	return out
}

// meshPorts computes the node's published ports from the view.
func (a *Agent) meshPorts(v view) []MeshPort {
	type key struct {
		proto string
		port  uint16
	}
	byKey := map[key]*MeshPort{}
	var order []key
	add := func(p PortEntry, host bool, backend netip.Addr) {
		k := key{p.Proto, p.Published}
		mp := byKey[k]
		if mp == nil {
			mp = &MeshPort{Proto: p.Proto, Published: p.Published, Target: p.Target, Masquerade: p.Masquerade, HostMode: host}
			byKey[k] = mp
			order = append(order, k)
		} else if mp.HostMode != host || mp.Target != p.Target {
			a.cfg.Log.Warn("overlay: a published port is claimed twice; keeping the first", "proto", p.Proto, "port", p.Published)
			return
		}
		if backend.IsValid() && !slices.Contains(mp.Backends, backend) {
			mp.Backends = append(mp.Backends, backend)
		}
	}
	if v.node != nil {
		for _, e := range v.entries[v.node.net.ID] {
			var ip netip.Addr
			if !e.Draining {
				ip, _ = netip.ParseAddr(e.IP)
			}
			for _, p := range e.Ports {
				if !p.Host {
					add(p, false, ip)
				}
			}
		}
	}
	a.mu.Lock()
	for _, lt := range v.tasks {
		if !a.serving[lt.id] || lt.svcRemoved {
			continue
		}
		addr := a.hostAddrs[lt.id]
		if !addr.IsValid() && len(lt.atts) > 0 {
			addr = lt.atts[0].addr.Addr()
		}
		if !addr.IsValid() {
			continue
		}
		for _, p := range hostPorts(lt.task) {
			add(p, true, addr)
		}
	}
	a.mu.Unlock()
	out := make([]MeshPort, 0, len(byKey))
	for _, k := range order {
		mp := byKey[k]
		slices.SortFunc(mp.Backends, netip.Addr.Compare)
		out = append(out, *mp)
	}
	sortPorts(out)
	return out
}

func sortPorts(ps []MeshPort) {
	slices.SortFunc(ps, func(x, y MeshPort) int {
		return cmp.Or(cmp.Compare(x.Proto, y.Proto), cmp.Compare(x.Published, y.Published))
	})
}

func sameMeshPort(x, y MeshPort) bool {
	return x.Proto == y.Proto && x.Published == y.Published && x.Target == y.Target && x.Masquerade == y.Masquerade &&
		x.HostMode == y.HostMode && slices.Equal(x.Backends, y.Backends)
}

func meshBackends(ps []MeshPort) map[netip.Addr]bool {
	m := map[netip.Addr]bool{}
	for _, p := range ps {
		for _, b := range p.Backends {
			m[b] = true
		}
	}
	return m
}

// ingressNodes are the nodes' own addresses on the ingress network (their
// node entries), sorted.
func ingressNodes(es []Entry) []MeshNode {
	var out []MeshNode
	for _, e := range es {
		if len(e.Key) <= len(NodeEntryPrefix) || e.Key[:len(NodeEntryPrefix)] != NodeEntryPrefix {
			continue
		}
		ip, err1 := netip.ParseAddr(e.IP)
		mac, err2 := net.ParseMAC(e.MAC)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, MeshNode{MAC: mac, Addr: ip})
	}
	slices.SortFunc(out, func(x, y MeshNode) int { return x.Addr.Compare(y.Addr) })
	return slices.CompactFunc(out, func(x, y MeshNode) bool { return x.Addr == y.Addr })
}

func sameReturn(x, y MeshReturn) bool {
	return x.Interface == y.Interface && x.Subnet == y.Subnet && slices.Equal(x.UDPPorts, y.UDPPorts) &&
		slices.EqualFunc(x.Nodes, y.Nodes, func(p, q MeshNode) bool { return p.Addr == q.Addr && p.MAC.String() == q.MAC.String() })
}

// programMesh applies the node's published ports and the local tasks'
// return paths. progMu is held.
func (a *Agent) programMesh(v view, full bool, resync map[string]bool) {
	m := a.cfg.Mesh
	ports := a.meshPorts(v)
	if m == nil {
		a.mu.Lock()
		warn := len(ports) > 0 && !a.warned
		if warn {
			a.warned = true
		}
		a.mu.Unlock()
		if warn {
			a.cfg.Log.Warn("overlay: published ports are wanted but this node has no routing mesh (Config.Mesh)")
		}
		return
	}
	prev := a.applPorts
	settled := a.meshSettled(ports)
	if !settled {
		// Right after a restart the view is partial: keep what the previous
		// daemon programmed (meshstate.go).
		ports = keepAdopted(a.adopted, ports)
	} else {
		a.adopted = nil
	}
	switch {
	case len(ports) == 0 && a.meshOn && settled:
		if err := m.Remove(a.cfg.HostNetns); err != nil {
			a.cfg.Log.Warn("overlay: removing the routing mesh failed; retrying at the next resync", "err", err)
		} else {
			a.meshOn, a.applPorts = false, nil
			a.savePorts(nil)
		}
	case len(ports) > 0 && (full || !a.meshOn || !slices.EqualFunc(prev, ports, sameMeshPort)):
		if err := m.Apply(a.cfg.HostNetns, ports); err != nil {
			a.cfg.Log.Warn("overlay: programming the published ports failed; retrying at the next resync", "err", err)
		} else {
			if !a.meshOn || !slices.EqualFunc(prev, ports, sameMeshPort) {
				a.savePorts(ports)
			}
			a.meshOn, a.applPorts = true, ports
		}
	}
	var gone []netip.Addr
	if !slices.EqualFunc(prev, a.applPorts, sameMeshPort) {
		now := meshBackends(a.applPorts)
		for b := range meshBackends(prev) {
			if !now[b] {
				gone = append(gone, b)
			}
		}
		slices.SortFunc(gone, netip.Addr.Compare)
	}
	if len(gone) > 0 || len(a.meshHeld) > 0 {
		now := meshBackends(a.applPorts)
		a.meshHeld = settleGone(gone, a.meshHeld, a.meshDraining(v), func(b netip.Addr) bool { return now[b] }, func(b netip.Addr) {
			a.cfg.Log.Info("overlay: a published ports' backend is gone; flushing its flows", "backend", b, "settled", settled)
			if err := m.FlushConntrack(a.cfg.HostNetns, b); err != nil {
				a.cfg.Log.Warn("overlay: flushing the published ports' flows to a removed backend failed", "backend", b, "err", err)
			}
		})
	}
	a.programReturns(v, resync)
}

// meshDraining are the published ports' backends that are draining: the
// ingress network's draining entries, and local tasks (host-mode ports)
// that Draining withdrew and that have not died since.
func (a *Agent) meshDraining(v view) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	if v.node != nil {
		for _, e := range v.entries[v.node.net.ID] {
			if ip, err := netip.ParseAddr(e.IP); err == nil && e.Draining {
				out[ip] = true
			}
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, lt := range v.tasks {
		// Draining withdrew it and kept its (draining) entries; Gone drops
		// them: a task that died is not draining.
		es, published := a.published[lt.id]
		if a.serving[lt.id] || !published || len(es) > 0 && !es[0].Draining {
			continue
		}
		if addr := a.hostAddrs[lt.id]; addr.IsValid() {
			out[addr] = true
		} else if len(lt.atts) > 0 {
			out[lt.atts[0].addr.Addr()] = true
		}
	}
	return out
}

// programReturns gives every local task on the ingress network its return
// path through every node's ingress address.
func (a *Agent) programReturns(v view, resync map[string]bool) {
	m := a.cfg.Mesh
	for _, lt := range v.tasks {
		for _, at := range lt.atts {
			if !at.ingress {
				continue
			}
			r := MeshReturn{Interface: at.ifName, Subnet: at.net.Subnet, Nodes: ingressNodes(v.entries[at.net.ID])}
			a.mu.Lock()
			task := lt.task // UpdateEndpoint replaces it
			a.mu.Unlock()
			for _, p := range ingressPorts(task) {
				if p.Proto == "udp" && !p.Masquerade && !slices.Contains(r.UDPPorts, p.Target) {
					r.UDPPorts = append(r.UDPPorts, p.Target)
				}
			}
			slices.Sort(r.UDPPorts)
			if prev, ok := a.returns[lt.id]; ok && !resync[lt.id] && sameReturn(prev, r) {
				break
			}
			if err := m.ApplyReturn(lt.netns, r); err != nil {
				a.cfg.Log.Warn("overlay: programming a task's return path failed; retrying at the next resync", "task", lt.id, "err", err)
				break
			}
			a.returns[lt.id] = r
			break // one ingress interface per task
		}
	}
}

// removeReturn undoes a task's return path at Detach (its namespace
// stays).
func (a *Agent) removeReturn(id, netns string, atts []attachment) error {
	a.progMu.Lock()
	defer a.progMu.Unlock()
	_, had := a.returns[id]
	delete(a.returns, id)
	if a.cfg.Mesh == nil || !had && !slices.ContainsFunc(atts, func(at attachment) bool { return at.ingress }) {
		return nil
	}
	if err := a.cfg.Mesh.RemoveReturn(netns); err != nil {
		return fmt.Errorf("return path of task %s: %w", id, err)
	}
	return nil
}
