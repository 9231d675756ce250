package overlay

import (
	"errors"
	"net"
	"net/netip"

	"github.com/shoal-project/shoal/overlay/datapath"
	"github.com/shoal-project/shoal/overlay/dns"
	"github.com/shoal-project/shoal/overlay/gossip"
)

// bindDefaults fills the library constructors left nil with the real
// libraries of overlay/. The VIP library (ingress/vip) is another layer,
// which overlay may not import (DESIGN.md): the caller gives it (node/).
func bindDefaults(c *Config) error {
	if c.NewDatapath == nil {
		c.NewDatapath = newRealDatapath
	}
	if c.NewGossip == nil {
		c.NewGossip = newRealGossip
	}
	if c.NewDNS == nil {
		c.NewDNS = newRealDNS
	}
	if c.VIP == nil {
		return errors.New("overlay: Config.VIP is required: give ingress/vip through an adapter (node/ does)")
	}
	return nil
}

// realDatapath adapts *datapath.Datapath.
type realDatapath struct{ d *datapath.Datapath }

func newRealDatapath(c DatapathConfig) (Datapath, error) {
	d, err := datapath.New(datapath.Config{StateDir: c.StateDir, LinkPrefix: c.LinkPrefix, VTEP: c.VTEP, Port: c.Port, Log: c.Log})
	if err != nil {
		return nil, err
	}
	return realDatapath{d}, nil
}

func (r realDatapath) EnsureNetwork(n Network) error {
	return r.d.EnsureNetwork(datapath.Network(n))
}
func (r realDatapath) AttachTask(netID, taskNetns, ifName string, addr netip.Prefix, mac net.HardwareAddr) error {
	return r.d.AttachTask(netID, taskNetns, ifName, addr, mac)
}
func (r realDatapath) DetachTask(netID, taskNetns, ifName string) error {
	return r.d.DetachTask(netID, taskNetns, ifName)
}
func (r realDatapath) SetPeers(netID string, peers []Peer) error {
	ps := make([]datapath.Peer, len(peers))
	for i, p := range peers {
		ps[i] = datapath.Peer(p)
	}
	return r.d.SetPeers(netID, ps)
}
func (r realDatapath) RemoveNetwork(netID string) error { return r.d.RemoveNetwork(netID) }
func (r realDatapath) Networks() ([]string, error)      { return r.d.Networks() }
func (r realDatapath) Close() error                     { return r.d.Close() }

// realGossip adapts *gossip.Gossip.
type realGossip struct{ g *gossip.Gossip }

func newRealGossip(c GossipConfig) (Gossip, error) {
	g, err := gossip.New(gossip.Config{NodeID: c.NodeID, BindAddr: c.BindAddr, Port: c.Port,
		AdvertiseAddr: c.AdvertiseAddr, Key: c.Key, OnChange: c.OnChange, Log: c.Log})
	if err != nil {
		return nil, err
	}
	return realGossip{g}, nil
}

func (r realGossip) Join(seeds []string) (int, error) { return r.g.Join(seeds) }
func (r realGossip) Publish(e Entry)                  { r.g.Publish(toGossip(e)) }
func (r realGossip) Withdraw(network, key string)     { r.g.Withdraw(network, key) }
func (r realGossip) DropNode(nodeID string)           { r.g.DropNode(nodeID) }
func (r realGossip) RestoreNode(nodeID string)        { r.g.RestoreNode(nodeID) }
func (r realGossip) Close() error                     { return r.g.Close() }
func (r realGossip) Members() []string                { return r.g.Members() }
func (r realGossip) Entries(network string) []Entry {
	es := r.g.Entries(network)
	out := make([]Entry, len(es))
	for i, e := range es {
		out[i] = fromGossip(e)
	}
	return out
}

func toGossip(e Entry) gossip.Entry {
	return gossip.Entry{Network: e.Network, Key: e.Key, Owner: e.Owner, Generation: e.Generation, Version: e.Version,
		Deleted: e.Deleted, IP: e.IP, MAC: e.MAC, VTEP: e.VTEP, ServiceID: e.ServiceID, ServiceName: e.ServiceName,
		TaskName: e.TaskName, Aliases: e.Aliases, VIP: e.VIP, Draining: e.Draining,
		Ports: convPorts(e.Ports, func(p PortEntry) gossip.Port { return gossip.Port(p) })}
}

func convPorts[A, B any](ps []A, f func(A) B) []B {
	if len(ps) == 0 {
		return nil
	}
	out := make([]B, len(ps))
	for i, p := range ps {
		out[i] = f(p)
	}
	return out
}

func fromGossip(e gossip.Entry) Entry {
	return Entry{Network: e.Network, Key: e.Key, Owner: e.Owner, Generation: e.Generation, Version: e.Version,
		Deleted: e.Deleted, IP: e.IP, MAC: e.MAC, VTEP: e.VTEP, ServiceID: e.ServiceID, ServiceName: e.ServiceName,
		TaskName: e.TaskName, Aliases: e.Aliases, VIP: e.VIP, Draining: e.Draining,
		Ports: convPorts(e.Ports, func(p gossip.Port) PortEntry { return PortEntry(p) })}
}

func newRealDNS(c DNSConfig) (DNS, error) {
	return dns.New(dns.Config{Resolver: c.Resolver, Upstreams: c.Upstreams, TTL: c.TTL, Log: c.Log})
}
