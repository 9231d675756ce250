package overlay

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// applied is what a task's namespace was last given: its services, to skip
// an unchanged Apply and to flush the flows of backends that left.
type applied struct {
	services []Service
	// held are backends that left the task's VIPs while draining: their
	// flows are flushed once they are gone (settleGone).
	held []netip.Addr
}

// kick wakes the programming loop; wakes coalesce.
func (a *Agent) kick() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// loop programs on every wake and fully every ResyncPeriod; it also retries
// a failed gossip join then.
func (a *Agent) loop(ctx context.Context) {
	defer close(a.done)
	defer a.rejoinWG.Wait() // each attempt is bounded (rejoinOne)
	tick := a.cfg.Clock.NewTicker(a.cfg.ResyncPeriod)
	defer tick.Stop()
	members := a.cfg.Clock.NewTicker(memberCheckPeriod)
	defer members.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
			a.program(false)
		case <-members.Chan():
			a.maybeRejoin(ctx)
		case <-tick.Chan():
			a.syncNode()
			a.program(true)
		}
	}
}

// memberCheckPeriod is how often the loop checks that the gossip still
// sees enough members (a cheap, local look) and rejoins the seeds if not.
const memberCheckPeriod = time.Second

// maxRejoins bounds the rejoin attempts in flight. While the network is
// cut each waits memberlist's TCPTimeout (5 s) for its seed; a new one
// starts every memberCheckPeriod, so that once the network is back an
// attempt with a fresh connection is at most a period away. (One attempt at
// a time, run in the loop, had the loop wait up to 5 s per seed: names were
// right again only 4.5-5.6 s after a 30 s partition healed, and the loop
// programmed nothing meanwhile.)
const maxRejoins = 5

// maybeRejoin starts a rejoin attempt when the join failed, or when fewer
// members are alive than there are seeds: after a partition longer than
// memberlist's gossip to the dead (30 s) the two sides would not find each
// other again before the next session message.
func (a *Agent) maybeRejoin(ctx context.Context) {
	a.mu.Lock()
	g, joined, seeds := a.gossip, a.joined, a.seeds
	a.mu.Unlock()
	if g == nil || len(seeds) == 0 || joined && len(g.Members()) > len(seeds) {
		return
	}
	if a.rejoins.Load() >= maxRejoins {
		return
	}
	seed := seeds[int(a.rejoinSeq.Add(1)-1)%len(seeds)]
	a.rejoins.Add(1)
	a.rejoinWG.Add(1)
	go func() {
		defer a.rejoinWG.Done()
		defer a.rejoins.Add(-1)
		before := len(g.Members())
		a.rejoinOne(g, seed)
		if ctx.Err() == nil && len(g.Members()) > before && a.cfg.OnPeersBack != nil {
			a.cfg.OnPeersBack()
		}
	}()
}

// view is a consistent copy of what programming needs.
type view struct {
	tasks   []*localTask
	dp      Datapath
	entries map[string][]Entry // network -> live entries of nodes not down
	node    *attachment        // the node's own ingress attachment, if any
	closed  bool               // Close has begun: program nothing
}

func (a *Agent) snapshot() view {
	a.mu.Lock()
	v := view{dp: a.dp, entries: map[string][]Entry{}, closed: a.closed}
	for _, lt := range a.tasks {
		v.tasks = append(v.tasks, lt)
	}
	g, down := a.gossip, a.down
	// The node's own entries come from what it publishes, not from the
	// gossip's copy: that copy lags (entries are published one by one, and
	// a program in between saw a restarted node's second local task missing,
	// dropped it from the mesh and flushed its flows).
	own := map[string][]Entry{}
	for _, es := range a.published {
		for _, e := range es {
			own[e.Network] = append(own[e.Network], e)
		}
	}
	v.node = a.nodeHave
	a.mu.Unlock()
	slices.SortFunc(v.tasks, func(x, y *localTask) int { return strings.Compare(x.id, y.id) })
	atts := []attachment{}
	if v.node != nil {
		atts = append(atts, *v.node)
	}
	for _, lt := range v.tasks {
		atts = append(atts, lt.atts...)
	}
	for _, at := range atts {
		if _, ok := v.entries[at.net.ID]; ok {
			continue
		}
		es := own[at.net.ID]
		if g != nil {
			es = withOwn(g.Entries(at.net.ID), es)
		}
		live := make([]Entry, 0, len(es))
		for _, e := range es {
			if !e.Deleted && !down[e.Owner] {
				live = append(live, e)
			}
		}
		v.entries[at.net.ID] = live
	}
	return v
}

// withOwn is the gossip's entries of a network with the node's own
// published ones in place of the gossip's copies of the same keys.
func withOwn(gossiped, own []Entry) []Entry {
	if len(own) == 0 {
		return gossiped
	}
	mine := make(map[string]bool, len(own))
	for _, e := range own {
		mine[e.Key] = true
	}
	out := make([]Entry, 0, len(gossiped)+len(own))
	for _, e := range gossiped {
		if !mine[e.Key] {
			out = append(out, e)
		}
	}
	return append(out, own...)
}

// resyncTasks is how many local tasks one resync reapplies (their VIP
// tables and return paths), in turn: a resync that reapplied every task's
// tables held the programming loop for seconds on a node with a hundred
// tasks (two nftables transactions in each task's namespace), and a task's
// death waited for it (at 300 published services a killed backend took
// 1.7-2.5 s to leave each node's mesh). Every task is still reapplied every
// ceil(tasks/resyncTasks) resync periods.
const resyncTasks = 16

// program sets every local network's peers and every local task's VIP
// table from the table; full (the periodic resync) also reapplies what
// seems unchanged: the peers, the mesh table, and the next resyncTasks
// tasks' tables.
func (a *Agent) program(full bool) {
	a.progMu.Lock()
	defer a.progMu.Unlock()
	v := a.snapshot()
	if v.closed {
		// Close drops the gossip before it stops this loop: a view taken
		// now would lack every peer's entry, and programming it would
		// remove the mesh table and flush flows a restarted daemon keeps.
		return
	}
	// The tasks this resync reapplies: the next resyncTasks after the
	// last one the previous resync took (v.tasks is sorted by ID).
	resync := map[string]bool{}
	if full && len(v.tasks) > 0 {
		start, _ := slices.BinarySearchFunc(v.tasks, a.resyncAfter, func(lt *localTask, id string) int { return strings.Compare(lt.id, id) })
		if start < len(v.tasks) && v.tasks[start].id == a.resyncAfter {
			start++
		}
		for i := 0; i < min(resyncTasks, len(v.tasks)); i++ {
			lt := v.tasks[(start+i)%len(v.tasks)]
			resync[lt.id] = true
			a.resyncAfter = lt.id
		}
	}
	vtep := a.cfg.DataPathAddr.String()
	for netID, es := range v.entries {
		peers := []Peer{}
		for _, e := range es {
			if e.Owner == a.cfg.NodeID || e.VTEP == vtep {
				continue
			}
			p, ok := peerOf(e)
			if !ok {
				a.cfg.Log.Warn("overlay: ignoring a malformed gossip entry", "network", netID, "key", e.Key, "owner", e.Owner)
				continue
			}
			peers = append(peers, p)
		}
		if err := v.dp.SetPeers(netID, peers); err != nil {
			a.cfg.Log.Warn("overlay: programming the peers failed; retrying at the next resync", "network", netID, "err", err)
		}
	}
	for _, lt := range v.tasks {
		if len(lt.atts) == 0 {
			continue // host-mode ports only: no overlay, no VIP table
		}
		svcs := a.servicesFor(lt, v.entries)
		prev, had := a.applied[lt.id]
		unchanged := had && !resync[lt.id] && slices.EqualFunc(prev.services, svcs, sameService)
		if unchanged && len(prev.held) == 0 {
			continue
		}
		if !unchanged {
			if err := a.vip.Apply(lt.netns, svcs); err != nil {
				a.cfg.Log.Warn("overlay: programming a task's VIPs failed; retrying at the next resync", "task", lt.id, "err", err)
				continue
			}
		}
		now := map[netip.Addr]bool{}
		for _, s := range svcs {
			for _, b := range s.Backends {
				now[b] = true
			}
		}
		held := settleGone(goneBackends(prev.services, svcs), prev.held, drainingOn(lt, v.entries), func(b netip.Addr) bool { return now[b] },
			func(b netip.Addr) {
				if err := a.vip.FlushConntrack(lt.netns, b); err != nil {
					a.cfg.Log.Warn("overlay: flushing the flows to a removed backend failed", "task", lt.id, "backend", b, "err", err)
				}
			})
		a.applied[lt.id] = applied{services: svcs, held: held}
	}
	a.programMesh(v, full, resync)
}

// servicesFor lists the VIPs of the task's networks with their serving
// backends across all nodes, the remembered VIPs with none included. The
// ingress network has none, as in Docker: it carries the routing mesh's
// flows to task addresses, not service to service traffic, and every task
// publishing a port is on it, so a VIP table there would hold every
// published service in every such task and be rewritten in all of them at
// each change (with 290 published services a task's death took 26 s to
// leave the mesh, the programming loop busy rewriting those tables).
func (a *Agent) servicesFor(lt *localTask, entries map[string][]Entry) []Service {
	byVIP := map[netip.Addr]*Service{}
	a.mu.Lock()
	for _, at := range lt.atts {
		if at.ingress {
			continue
		}
		for vip, info := range a.vips[at.net.ID] {
			if byVIP[vip] == nil {
				byVIP[vip] = &Service{ID: info.serviceID, VIP: vip}
			}
		}
	}
	a.mu.Unlock()
	for _, at := range lt.atts {
		if at.ingress {
			continue
		}
		for _, e := range entries[at.net.ID] {
			vip, err := netip.ParseAddr(e.VIP)
			if err != nil {
				continue
			}
			a.mu.Lock()
			if m := a.vips[at.net.ID]; m == nil || m[vip] == nil || m[vip].serviceID != e.ServiceID {
				a.rememberVIPLocked(at.net.ID, vip, e.ServiceID)
			}
			a.mu.Unlock()
			s := byVIP[vip]
			if s == nil || s.ID != e.ServiceID {
				s = &Service{ID: e.ServiceID, VIP: vip}
				byVIP[vip] = s
			}
			if e.Draining {
				continue
			}
			if ip, err := netip.ParseAddr(e.IP); err == nil && !slices.Contains(s.Backends, ip) {
				s.Backends = append(s.Backends, ip)
			}
		}
	}
	out := make([]Service, 0, len(byVIP))
	for _, s := range byVIP {
		slices.SortFunc(s.Backends, func(x, y netip.Addr) int { return x.Compare(y) })
		s.ID = vipTableID(s.ID, s.VIP)
		out = append(out, *s)
	}
	slices.SortFunc(out, func(x, y Service) int { return x.VIP.Compare(y.VIP) })
	return out
}

// vipTableID names a VIP in a task's VIP table. A service on two of the
// task's networks has a VIP on each, and the table needs one ID per VIP:
// the service ID's first 7 characters and the VIP in hex (16 characters,
// what ingress/vip keeps of an ID in its chain names) cannot collide, since
// a VIP belongs to one service.
func vipTableID(serviceID string, vip netip.Addr) string {
	b := vip.As4()
	if len(serviceID) > 7 {
		serviceID = serviceID[:7]
	}
	return fmt.Sprintf("%s-%02x%02x%02x%02x", serviceID, b[0], b[1], b[2], b[3])
}

func sameService(x, y Service) bool {
	return x.ID == y.ID && x.VIP == y.VIP && slices.Equal(x.Backends, y.Backends)
}

// goneBackends are the backends of prev that no service of cur has.
// settleGone decides about the backends that left (gone) or were held
// back earlier (held): one serving again needs nothing; one still draining
// keeps its flows (returned, to be looked at again), so that a connection
// opened before a planned stop finishes within the drain delay instead of
// being cut when the task left the tables; any other is gone (stopped,
// dead, removed, its node down) and flush clears its flows.
func settleGone(gone, held []netip.Addr, draining map[netip.Addr]bool, serving func(netip.Addr) bool, flush func(netip.Addr)) []netip.Addr {
	var keep []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, b := range append(slices.Clone(gone), held...) {
		if seen[b] {
			continue
		}
		seen[b] = true
		switch {
		case serving(b):
		case draining[b]:
			keep = append(keep, b)
		default:
			flush(b)
		}
	}
	return keep
}

// drainingOn are the addresses of the draining entries on the task's
// networks but ingress (whose backends the mesh keeps, meshDraining).
func drainingOn(lt *localTask, entries map[string][]Entry) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for _, at := range lt.atts {
		if at.ingress {
			continue
		}
		for _, e := range entries[at.net.ID] {
			if ip, err := netip.ParseAddr(e.IP); err == nil && e.Draining {
				out[ip] = true
			}
		}
	}
	return out
}

func goneBackends(prev, cur []Service) []netip.Addr {
	now := map[netip.Addr]bool{}
	for _, s := range cur {
		for _, b := range s.Backends {
			now[b] = true
		}
	}
	var out []netip.Addr
	for _, s := range prev {
		for _, b := range s.Backends {
			if !now[b] && !slices.Contains(out, b) {
				out = append(out, b)
			}
		}
	}
	return out
}

func peerOf(e Entry) (Peer, bool) {
	ip, err1 := netip.ParseAddr(e.IP)
	mac, err2 := net.ParseMAC(e.MAC)
	vtep, err3 := netip.ParseAddr(e.VTEP)
	if err1 != nil || err2 != nil || err3 != nil {
		return Peer{}, false
	}
	return Peer{IP: ip, MAC: mac, VTEP: vtep}, true
}

// Resolve answers a task's DNS question from the table, scoped to the
// task's networks: a service name or alias gives the service's VIP while
// any of its tasks is in the table (dnsrr: its serving tasks' addresses), tasks.NAME the serving tasks' addresses,
// a task name (service.slot.id) that task's address. Names are matched
// without case and trailing dot. known is false for names the cluster does
// not know (the DNS server forwards those).
func (a *Agent) Resolve(taskID, name string) ([]netip.Addr, bool) {
	q := strings.ToLower(strings.TrimSuffix(name, "."))
	if q == "" {
		return nil, false
	}
	a.mu.Lock()
	lt := a.tasks[taskID]
	g, down := a.gossip, a.down
	var nets []string
	if lt != nil {
		for _, at := range lt.atts {
			if !at.ingress { // no names on the ingress network (servicesFor)
				nets = append(nets, at.net.ID)
			}
		}
	}
	own := map[string][]Entry{}
	if g == nil {
		for _, es := range a.published {
			for _, e := range es {
				own[e.Network] = append(own[e.Network], e)
			}
		}
	}
	a.mu.Unlock()
	if lt == nil {
		return nil, false
	}
	base, tasksQ := strings.CutPrefix(q, "tasks.")
	var out []netip.Addr
	add := func(s string) {
		if ip, err := netip.ParseAddr(s); err == nil && !slices.Contains(out, ip) {
			out = append(out, ip)
		}
	}
	known := false
	for _, n := range nets {
		es := own[n]
		if g != nil {
			es = g.Entries(n)
		}
		for _, e := range es {
			if e.Deleted || down[e.Owner] {
				continue
			}
			// A VIP stays while any task of its service is in the table,
			// draining ones included (the VIP then resets, not times out).
			if e.VIP != "" && nameIs(q, e.ServiceName, e.Aliases) {
				known = true
				add(e.VIP)
			}
			if e.Draining {
				continue
			}
			if e.VIP == "" && nameIs(q, e.ServiceName, e.Aliases) {
				known = true
				add(e.IP)
			}
			if tasksQ && nameIs(base, e.ServiceName, e.Aliases) {
				known = true
				add(e.IP)
			}
			if strings.EqualFold(q, e.TaskName) {
				known = true
				add(e.IP)
			}
		}
	}
	slices.SortFunc(out, func(x, y netip.Addr) int { return x.Compare(y) })
	return out, known
}

func nameIs(q, name string, aliases []string) bool {
	if name != "" && strings.EqualFold(q, name) {
		return true
	}
	for _, al := range aliases {
		if strings.EqualFold(q, al) {
			return true
		}
	}
	return false
}
