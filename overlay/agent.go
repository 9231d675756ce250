package overlay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"google.golang.org/protobuf/proto"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	api "github.com/shoal-project/shoal/proto"
)

// Agent is one node's overlay: it attaches tasks to their networks,
// publishes them in gossip while they serve, programs the peers and VIPs
// every local task sees, and answers their DNS questions.
type Agent struct {
	cfg Config
	vip VIP
	dns DNS

	opMu   sync.Mutex // serializes Attach, Detach and Start (datapath life of networks)
	sessMu sync.Mutex // serializes Session
	progMu sync.Mutex // serializes programming runs; guards applied

	mu        sync.Mutex
	dp        Datapath
	dpPort    uint16
	gossip    Gossip
	gossipKey []byte
	gossipGen uint64 // counts gossip (re)starts
	seeds     []string
	joined    bool
	warnedKey bool
	down      map[string]bool
	tasks     map[string]*localTask
	published map[string][]Entry                 // task ID -> its entries in the table
	records   map[string][]string                // task ID -> networks, of every attached task (state.go)
	vips      map[string]map[netip.Addr]*vipInfo // network -> VIP -> service
	started   bool
	closed    bool

	applied map[string]applied // task ID -> what its netns was last given

	meshState // the routing mesh (mesh.go)

	netnsExists func(path string) bool // os.Stat; tests replace it

	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}

	// rejoin attempts in flight (program.go maybeRejoin), owned by the loop
	rejoins   atomic.Int32
	rejoinWG  sync.WaitGroup
	rejoinSeq atomic.Uint64 // which seed the next attempt dials
}

// localTask is a task attached on this node.
type localTask struct {
	id, netns  string
	task       *api.Task
	atts       []attachment
	svcRemoved bool // ServiceRemoved: its published ports are gone (a.mu)
}

type attachment struct {
	net     Network
	ifName  string
	addr    netip.Prefix
	mac     net.HardwareAddr
	aliases []string
	vip     netip.Addr // the task's service's VIP on this network (VIP mode)
	ingress bool       // the routing mesh's network
}

// vipInfo remembers a service's VIP on a network while the network is on
// the node, so a service with no backend left still has its VIP (and an
// immediate reset) rather than a timeout.
type vipInfo struct {
	serviceID string
}

// New returns an Agent; Start must follow before tasks are attached.
func New(cfg Config) (*Agent, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := bindDefaults(&cfg); err != nil {
		return nil, err
	}
	a := &Agent{
		cfg:       cfg,
		vip:       cfg.VIP,
		down:      map[string]bool{},
		tasks:     map[string]*localTask{},
		published: map[string][]Entry{},
		records:   map[string][]string{},
		vips:      map[string]map[netip.Addr]*vipInfo{},
		applied:   map[string]applied{},
		meshState: newMeshState(),
		wake:      make(chan struct{}, 1),
		netnsExists: func(p string) bool {
			_, err := os.Stat(p)
			return err == nil
		},
	}
	dp, err := cfg.NewDatapath(a.datapathConfig(cfg.DataPathPort))
	if err != nil {
		return nil, fmt.Errorf("overlay data path: %w", err)
	}
	a.dp, a.dpPort = dp, cfg.DataPathPort
	if a.dns, err = cfg.NewDNS(DNSConfig{Resolver: a, Upstreams: cfg.DNSUpstreams, TTL: 5, Log: cfg.Log}); err != nil {
		return nil, fmt.Errorf("overlay DNS server: %w", err)
	}
	return a, nil
}

func (a *Agent) datapathConfig(port uint16) DatapathConfig {
	return DatapathConfig{StateDir: a.cfg.StateDir + "/datapath", LinkPrefix: a.cfg.LinkPrefix,
		VTEP: a.cfg.DataPathAddr, Port: port, Log: a.cfg.Log}
}

// DataPathAddr is the node's VTEP, reported in its description.
func (a *Agent) DataPathAddr() netip.Addr { return a.cfg.DataPathAddr }

// Start adopts what a previous daemon left: the records of tasks not in
// liveTaskIDs are dropped and the networks no live task uses are removed
// (the live tasks are re-attached, and re-published, by their
// controllers). liveTaskIDs nil means unknown: nothing is removed (an
// empty, non-nil list means no task is live). Then it starts the
// programming loop.
func (a *Agent) Start(ctx context.Context, liveTaskIDs []string) error {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.mu.Lock()
	if a.started || a.closed {
		a.mu.Unlock()
		return errors.New("overlay: agent already started or closed")
	}
	a.started = true
	dp := a.dp
	a.mu.Unlock()

	keep, err := a.adoptRecords(liveTaskIDs)
	// The node's own ingress attachment and the published ports a previous
	// daemon left are adopted as they are (meshstate.go).
	node := a.loadNodeRecord()
	if node != nil && keep != nil {
		keep[node.net.ID] = true
	}
	a.progMu.Lock()
	a.applPorts = a.loadPorts()
	a.adopted = a.applPorts
	a.progMu.Unlock()
	a.mu.Lock()
	a.startedAt = a.cfg.Clock.Now()
	if node != nil && a.nodeWant == nil {
		a.nodeWant = node
	}
	a.mu.Unlock()
	switch {
	case liveTaskIDs == nil:
		a.cfg.Log.Info("overlay: the live tasks are not known; keeping every network until their tasks leave")
	case err != nil:
		a.cfg.Log.Warn("overlay: reading the task records failed; keeping every network", "err", err)
	default:
		nets, err := dp.Networks()
		if err != nil {
			a.cfg.Log.Warn("overlay: listing the networks failed; stale ones stay", "err", err)
		}
		for _, n := range nets {
			if keep[n] {
				continue
			}
			a.cfg.Log.Info("overlay: removing a network no task uses any more", "network", n)
			if err := dp.RemoveNetwork(n); err != nil {
				a.cfg.Log.Warn("overlay: removing a stale network failed", "network", n, "err", err)
			}
		}
	}
	if node != nil {
		a.syncNodeLocked()
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel, a.done = cancel, make(chan struct{})
	go a.loop(lctx)
	if node != nil || a.applPorts != nil {
		a.kick()
	}
	return nil
}

// Close stops the loop, the gossip and the DNS server. Networks and task
// interfaces stay (tasks outlive the daemon); Start adopts them.
func (a *Agent) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	g := a.gossip
	a.gossip = nil
	cancel, done := a.cancel, a.done
	a.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	var errs []error
	if g != nil {
		errs = append(errs, g.Close())
	}
	errs = append(errs, a.dns.Close())
	a.opMu.Lock()
	a.mu.Lock()
	dp := a.dp
	a.mu.Unlock()
	errs = append(errs, dp.Close())
	a.opMu.Unlock()
	return errors.Join(errs...)
}

// Attach connects the task's namespace to each of its networks (eth1,
// eth2, … in the order of Task.networks), registers it with the DNS server
// and gives it its VIP table. It returns the task's overlay addresses. It is
// idempotent: a controller re-attaching after a daemon restart calls it
// again. A failed Attach is undone by Detach.
func (a *Agent) Attach(ctx context.Context, t *api.Task, taskNetns string) ([]netip.Prefix, error) {
	if len(t.GetNetworks()) == 0 && len(hostPorts(t)) == 0 {
		return nil, nil
	}
	atts, err := attachmentsOf(t)
	if err != nil {
		return nil, err
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	lt := &localTask{id: t.GetId(), netns: taskNetns, task: t, atts: atts}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, errors.New("overlay: agent closed")
	}
	a.tasks[lt.id] = lt
	for _, at := range atts {
		if at.vip.IsValid() {
			a.rememberVIPLocked(at.net.ID, at.vip, t.GetServiceId())
		}
	}
	dp := a.dp
	a.mu.Unlock()
	if err := a.writeRecord(lt); err != nil {
		return nil, err
	}
	addrs := make([]netip.Prefix, 0, len(atts))
	for _, at := range atts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := dp.EnsureNetwork(at.net); err != nil {
			return nil, fmt.Errorf("overlay network %s: %w", at.net.ID, err)
		}
		if err := dp.AttachTask(at.net.ID, taskNetns, at.ifName, at.addr, at.mac); err != nil {
			return nil, fmt.Errorf("attach task %s to overlay network %s: %w", lt.id, at.net.ID, err)
		}
		addrs = append(addrs, at.addr)
	}
	if len(atts) > 0 {
		if err := a.dns.AddTask(lt.id, taskNetns); err != nil {
			return nil, fmt.Errorf("DNS for task %s: %w", lt.id, err)
		}
	}
	// In the table at once, not serving (Draining set): the other nodes
	// program it as a peer, so a task that is starting (a health check
	// calling a remote service, say) gets its replies; it enters DNS and
	// the VIPs with Serving.
	// A live task a previous daemon had serving is published serving at
	// once (its controller says Gone if its process died meanwhile).
	a.mu.Lock()
	wasServing, adopted := a.pendingAdopt[lt.id]
	delete(a.pendingAdopt, lt.id)
	if adopted && wasServing {
		a.serving[lt.id] = true
	}
	var entries []Entry
	if cur, ok := a.published[lt.id]; !ok || len(cur) != len(atts) {
		entries = a.entriesOf(lt, !a.serving[lt.id])
		a.published[lt.id] = entries
	}
	g := a.gossip
	a.mu.Unlock()
	publishAll(g, entries)
	a.program(false)
	return addrs, nil
}

// Addresses returns the overlay addresses of an attached task.
func (a *Agent) Addresses(taskID string) []netip.Prefix {
	a.mu.Lock()
	defer a.mu.Unlock()
	lt := a.tasks[taskID]
	if lt == nil {
		return nil
	}
	out := make([]netip.Prefix, len(lt.atts))
	for i, at := range lt.atts {
		out[i] = at.addr
	}
	return out
}

// Serving publishes the task, one entry per network: it enters DNS and
// every VIP.
func (a *Agent) Serving(t *api.Task) {
	a.mu.Lock()
	lt := a.tasks[t.GetId()]
	if lt == nil || a.closed {
		a.mu.Unlock()
		return
	}
	entries := a.entriesOf(lt, false)
	a.published[lt.id] = entries
	a.serving[lt.id] = true
	g := a.gossip
	a.mu.Unlock()
	publishAll(g, entries)
	a.kick()
	a.recordServing(lt.id)
}

// UpdateEndpoint takes a running task's new endpoint (its published ports
// changed without a new task, e.g. `service update --publish-add`): a
// serving task's entries are republished with the new ports, and every
// node's routing mesh follows within a gossip round.
func (a *Agent) UpdateEndpoint(t *api.Task) {
	a.mu.Lock()
	lt := a.tasks[t.GetId()]
	if lt == nil || a.closed {
		a.mu.Unlock()
		return
	}
	nt := proto.Clone(lt.task).(*api.Task)
	nt.Endpoint = nil
	if ep := t.GetEndpoint(); ep != nil {
		nt.Endpoint = proto.Clone(ep).(*api.Endpoint)
	}
	lt.task = nt
	var entries []Entry
	if a.serving[lt.id] {
		entries = a.entriesOf(lt, false)
		a.published[lt.id] = entries
	}
	g := a.gossip
	a.mu.Unlock()
	publishAll(g, entries)
	a.kick()
}

// Draining marks the task's entries draining (out of DNS and every VIP,
// while its peers stay programmed so open connections finish), programs
// this node at once, then waits DrainDelay (bounded by ctx) for gossip to
// reach every node. A task that is not serving returns at once.
func (a *Agent) Draining(ctx context.Context, t *api.Task) error {
	a.mu.Lock()
	lt := a.tasks[t.GetId()]
	cur := a.published[t.GetId()]
	wasServing := a.serving[t.GetId()]
	delete(a.serving, t.GetId())
	if lt == nil || !wasServing && (len(cur) == 0 || cur[0].Draining) {
		a.mu.Unlock()
		return nil // never served, or already draining: nothing to wait for
	}
	entries := a.entriesOf(lt, true)
	a.published[lt.id] = entries
	g := a.gossip
	a.mu.Unlock()
	publishAll(g, entries)
	a.recordServing(lt.id)
	a.program(false)
	if a.cfg.DrainDelay <= 0 {
		return nil
	}
	select {
	case <-a.cfg.Clock.After(a.cfg.DrainDelay):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ServiceRemoved takes the news that the task's service was removed
// (Task.service_removed): its published ports leave the routing mesh at
// once, on every node (its entries are republished without them), instead
// of being kept refused while the task drains, as Docker frees a removed
// service's ports at once. With no port left the table goes.
func (a *Agent) ServiceRemoved(t *api.Task) {
	a.mu.Lock()
	lt := a.tasks[t.GetId()]
	if lt == nil || a.closed || lt.svcRemoved {
		a.mu.Unlock()
		return
	}
	lt.svcRemoved = true
	var entries []Entry
	if cur := a.published[lt.id]; len(cur) > 0 {
		entries = a.entriesOf(lt, cur[0].Draining)
		a.published[lt.id] = entries
	}
	g := a.gossip
	a.mu.Unlock()
	publishAll(g, entries)
	a.program(false)
}

// Gone withdraws the task's entries at once (its process died unplanned)
// and programs this node.
func (a *Agent) Gone(t *api.Task) {
	a.withdraw(t.GetId())
	a.recordServing(t.GetId())
	a.program(false)
}

func (a *Agent) withdraw(id string) {
	a.mu.Lock()
	entries, ok := a.published[id]
	delete(a.published, id)
	delete(a.serving, id)
	g := a.gossip
	a.mu.Unlock()
	if ok && g != nil {
		for _, e := range entries {
			g.Withdraw(e.Network, e.Key)
		}
	}
}

// Detach undoes Attach: the task leaves the tables (if it has not yet),
// loses its VIP table, its DNS and its interfaces; a network with no local
// task left is removed. Every step tolerates what is already gone.
func (a *Agent) Detach(ctx context.Context, t *api.Task, taskNetns string) error {
	id := t.GetId()
	a.withdraw(id)
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.mu.Lock()
	lt := a.tasks[id]
	delete(a.tasks, id)
	delete(a.pendingAdopt, id)
	dp := a.dp
	a.mu.Unlock()
	atts := []attachment(nil)
	if lt != nil {
		atts = lt.atts
		if taskNetns == "" {
			taskNetns = lt.netns
		}
	} else if len(t.GetNetworks()) > 0 {
		atts, _ = attachmentsOf(t)
	}
	var errs []error
	a.progMu.Lock()
	delete(a.applied, id)
	a.progMu.Unlock()
	// A namespace already gone took its VIP table with it (a replayed
	// removal, or a Prepare that failed before the namespace existed).
	if taskNetns != "" && a.netnsExists(taskNetns) && len(atts) > 0 {
		if err := a.vip.Remove(taskNetns); err != nil {
			errs = append(errs, fmt.Errorf("VIP table of task %s: %w", id, err))
		}
		if err := a.removeReturn(id, taskNetns, atts); err != nil {
			errs = append(errs, err)
		}
	}
	a.forgetHostAddr(id)
	if err := a.dns.RemoveTask(id); err != nil {
		errs = append(errs, fmt.Errorf("DNS of task %s: %w", id, err))
	}
	for _, at := range atts {
		if err := dp.DetachTask(at.net.ID, taskNetns, at.ifName); err != nil {
			errs = append(errs, fmt.Errorf("detach task %s from overlay network %s: %w", id, at.net.ID, err))
		}
	}
	a.mu.Lock()
	delete(a.records, id)
	a.mu.Unlock()
	for _, at := range atts {
		if a.networkInUse(at.net.ID) {
			continue
		}
		if err := dp.RemoveNetwork(at.net.ID); err != nil {
			errs = append(errs, fmt.Errorf("remove overlay network %s: %w", at.net.ID, err))
			continue
		}
		a.mu.Lock()
		delete(a.vips, at.net.ID)
		a.mu.Unlock()
	}
	if err := a.removeRecord(id); err != nil {
		errs = append(errs, err)
	}
	a.kick()
	return errors.Join(errs...)
}

// networkInUse tells whether an attached task uses the network: one
// attached by this daemon, or one a previous daemon attached that has not
// been re-attached yet (its record).
func (a *Agent) networkInUse(netID string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, lt := range a.tasks {
		for _, at := range lt.atts {
			if at.net.ID == netID {
				return true
			}
		}
	}
	for _, nets := range a.records {
		if slices.Contains(nets, netID) {
			return true
		}
	}
	return a.nodeHave != nil && a.nodeHave.net.ID == netID
}

// Session applies the overlay part of a session message: the data path
// port, the gossip key (the first message starts the gossip; a new key
// restarts it), the nodes the managers consider down (their entries are
// dropped and ignored) and the seeds to join.
func (a *Agent) Session(msg *api.SessionMessage) {
	a.sessMu.Lock()
	defer a.sessMu.Unlock()
	port := uint16(msg.GetDataPathPort())
	if port == 0 {
		port = DefaultDataPathPort
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	oldPort := a.dpPort
	key := msg.GetNetworkKey()
	if len(key) == 0 {
		key = a.gossipKey // a message without a key changes nothing
	}
	restart := len(key) > 0 && (a.gossip == nil || !bytes.Equal(key, a.gossipKey))
	if len(key) == 0 && !a.warnedKey {
		a.warnedKey = true
		a.cfg.Log.Warn("overlay: the managers sent no network key yet; the gossip starts once they do (are the managers up to date?)")
	}
	old := a.gossip
	down := map[string]bool{}
	for _, n := range msg.GetDownNodes() {
		if n != a.cfg.NodeID {
			down[n] = true
		}
	}
	var up []string
	for n := range a.down {
		if !down[n] {
			up = append(up, n)
		}
	}
	a.down = down
	a.mu.Unlock()

	if port != oldPort {
		if dp, err := a.cfg.NewDatapath(a.datapathConfig(port)); err != nil {
			a.cfg.Log.Error("overlay: the cluster's data path port cannot be applied", "port", port, "err", err)
		} else {
			a.cfg.Log.Info("overlay: data path port set by the cluster; networks already on this node keep theirs until they are recreated", "port", port, "was", oldPort)
			a.mu.Lock()
			if a.closed {
				a.mu.Unlock()
				_ = dp.Close()
				return
			}
			olddp := a.dp
			a.dp, a.dpPort = dp, port
			a.mu.Unlock()
			a.opMu.Lock() // no Attach or Detach is using the old one
			_ = olddp.Close()
			a.opMu.Unlock()
		}
	}
	if restart {
		if old != nil {
			_ = old.Close()
		}
		g, err := a.cfg.NewGossip(GossipConfig{NodeID: a.cfg.NodeID, BindAddr: a.cfg.DataPathAddr, Port: a.cfg.GossipPort,
			AdvertiseAddr: a.cfg.DataPathAddr, Key: key, OnChange: func(string) { a.kick() }, Log: a.cfg.Log})
		a.mu.Lock()
		if err == nil && a.closed { // Close ran meanwhile
			a.mu.Unlock()
			_ = g.Close()
			return
		}
		if err != nil {
			a.gossip = nil
			a.mu.Unlock()
			a.cfg.Log.Error("overlay: the gossip cannot start; retrying with the next session message", "port", a.cfg.GossipPort, "err", err)
			return
		}
		a.gossip, a.gossipKey, a.joined = g, bytes.Clone(key), false
		a.gossipGen++
		var pub []Entry
		for _, es := range a.published {
			pub = append(pub, es...)
		}
		a.mu.Unlock()
		publishAll(g, pub)
	}
	a.mu.Lock()
	g := a.gossip
	a.mu.Unlock()
	if g != nil {
		for n := range down {
			g.DropNode(n)
		}
		for _, n := range up {
			g.RestoreNode(n)
		}
	}
	seeds := make([]string, 0, len(msg.GetGossipSeeds()))
	for _, s := range msg.GetGossipSeeds() {
		if s == a.cfg.DataPathAddr.String() {
			continue
		}
		seeds = append(seeds, net.JoinHostPort(s, strconv.Itoa(a.cfg.GossipPort)))
	}
	slices.Sort(seeds)
	a.mu.Lock()
	changed := !slices.Equal(seeds, a.seeds)
	a.seeds = seeds
	a.mu.Unlock()
	if changed || restart {
		a.join()
	}
	a.kick()
}

// join joins the seeds; a failure is retried by the loop's next resync.
// rejoinOne joins through one seed (a push-pull, bounded by memberlist's
// TCPTimeout) and records the outcome if g is still the node's gossip.
func (a *Agent) rejoinOne(g Gossip, seed string) {
	a.mu.Lock()
	gen := a.gossipGen
	a.mu.Unlock()
	n, err := g.Join([]string{seed})
	a.mu.Lock()
	if a.gossipGen == gen && a.gossip == g && err == nil && n > 0 {
		a.joined = true
	}
	a.mu.Unlock()
	if err != nil || n == 0 {
		a.cfg.Log.Debug("overlay: rejoining the gossip through a seed failed; retrying", "seed", seed, "err", err)
	}
}

func (a *Agent) join() {
	a.mu.Lock()
	g, seeds, gen := a.gossip, a.seeds, a.gossipGen
	a.mu.Unlock()
	if g == nil || len(seeds) == 0 {
		return
	}
	n, err := g.Join(seeds)
	a.mu.Lock()
	if a.gossipGen == gen { // not restarted meanwhile
		a.joined = err == nil && n > 0
	}
	a.mu.Unlock()
	if err != nil || n == 0 {
		a.cfg.Log.Warn("overlay: joining the gossip failed; retrying", "seeds", seeds, "err", err)
	}
}

// entriesOf builds the task's entries, one per network. a.mu must be held.
func (a *Agent) entriesOf(lt *localTask, draining bool) []Entry {
	t := lt.task
	out := make([]Entry, 0, len(lt.atts))
	for _, at := range lt.atts {
		e := Entry{Network: at.net.ID, Key: lt.id, Owner: a.cfg.NodeID,
			IP: at.addr.Addr().String(), MAC: at.mac.String(), VTEP: a.cfg.DataPathAddr.String(),
			ServiceID: t.GetServiceId(), ServiceName: serviceName(t), TaskName: taskName(t),
			Aliases: slices.Clone(at.aliases), Draining: draining}
		if at.vip.IsValid() {
			e.VIP = at.vip.String()
		}
		if at.ingress && !lt.svcRemoved {
			e.Ports = ingressPorts(t)
		}
		out = append(out, e)
	}
	return out
}

// rememberVIPLocked records a service's VIP on a network. a.mu held.
func (a *Agent) rememberVIPLocked(netID string, vip netip.Addr, svcID string) {
	m := a.vips[netID]
	if m == nil {
		m = map[netip.Addr]*vipInfo{}
		a.vips[netID] = m
	}
	m[vip] = &vipInfo{serviceID: svcID}
}

func serviceName(t *api.Task) string {
	if n := t.GetServiceAnnotations().GetName(); n != "" {
		return n
	}
	return t.GetServiceId()
}

// taskName is Docker's: service.slot.id, or service.node.id for a global
// service's task.
func taskName(t *api.Task) string {
	if t.GetSlot() > 0 {
		return fmt.Sprintf("%s.%d.%s", serviceName(t), t.GetSlot(), t.GetId())
	}
	return fmt.Sprintf("%s.%s.%s", serviceName(t), t.GetNodeId(), t.GetId())
}

// attachmentsOf reads the task's attachments as the allocator filled them.
func attachmentsOf(t *api.Task) ([]attachment, error) {
	vipMode := t.GetEndpoint().GetSpec().GetMode() != api.EndpointSpec_DNSRR
	out := make([]attachment, 0, len(t.GetNetworks()))
	for i, na := range t.GetNetworks() {
		at, err := attachmentOf(na, i)
		if err != nil {
			return nil, fmt.Errorf("task %s, network %s: %w (the allocator fills these; is the manager up to date?)", t.GetId(), na.GetNetworkId(), err)
		}
		if vipMode {
			for _, v := range t.GetEndpoint().GetVirtualIps() {
				if v.GetNetworkId() != na.GetNetworkId() {
					continue
				}
				if p, err := netip.ParsePrefix(v.GetAddr()); err == nil {
					at.vip = p.Addr()
				} else if ad, err := netip.ParseAddr(v.GetAddr()); err == nil {
					at.vip = ad
				}
			}
		}
		out = append(out, at)
	}
	return out, nil
}

func attachmentOf(na *api.NetworkAttachment, i int) (attachment, error) {
	at := attachment{ifName: fmt.Sprintf("eth%d", i+1), aliases: na.GetAliases(), ingress: na.GetIngress()}
	if na.GetNetworkId() == "" {
		return at, errors.New("no network ID")
	}
	if len(na.GetAddresses()) == 0 {
		return at, errors.New("no address allocated")
	}
	var err error
	if at.addr, err = netip.ParsePrefix(na.GetAddresses()[0]); err != nil {
		return at, fmt.Errorf("address %q: %v", na.GetAddresses()[0], err)
	}
	if at.mac, err = net.ParseMAC(na.GetMac()); err != nil {
		return at, fmt.Errorf("MAC %q: %v", na.GetMac(), err)
	}
	subnet, err := netip.ParsePrefix(na.GetSubnet())
	if err != nil {
		subnet = at.addr.Masked()
	}
	gw, err := netip.ParseAddr(na.GetGateway())
	if err != nil {
		return at, fmt.Errorf("gateway %q: %v", na.GetGateway(), err)
	}
	if na.GetVni() == 0 {
		return at, errors.New("no VNI")
	}
	at.net = Network{ID: na.GetNetworkId(), VNI: na.GetVni(), Subnet: subnet, Gateway: gw, MTU: int(na.GetMtu()), Internal: na.GetInternal()}
	return at, nil
}

// publishAll publishes entries on g; a nil g (no gossip yet: the network key
// has not come) publishes nothing, and Session republishes later.
func publishAll(g Gossip, entries []Entry) {
	if g == nil {
		return
	}
	for _, e := range entries {
		g.Publish(e)
	}
}
