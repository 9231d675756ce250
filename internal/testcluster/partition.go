package testcluster

// Isolate cuts a node (by name: "m1", "w3") off from every other node:
// raft messages and gRPC connections alike.
func (c *Cluster) Isolate(name string) {
	if m := c.managerByName(name); m != nil {
		c.raftNet.Isolate(m.Addr)
	}
	c.net.isolate(name)
}

// Cut severs the link between two nodes in both directions.
func (c *Cluster) Cut(a, b string) {
	ma, mb := c.managerByName(a), c.managerByName(b)
	if ma != nil && mb != nil {
		c.raftNet.Cut(ma.Addr, mb.Addr)
	}
	c.net.cutLink(a, b)
}

// Heal restores every link.
func (c *Cluster) Heal() {
	c.raftNet.Heal()
	c.net.heal()
}

func (c *Cluster) managerByName(name string) *Manager {
	for _, m := range c.Managers() {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Drop drops a share (0..1) of the raft messages from manager a to manager
// b (gRPC traffic is not affected). Heal ends it.
func (c *Cluster) Drop(a, b string, share float64) {
	ma, mb := c.managerByName(a), c.managerByName(b)
	if ma == nil || mb == nil {
		c.tb.Fatalf("Drop: %s and %s must both be managers", a, b)
	}
	c.raftNet.Drop(ma.Addr, mb.Addr, share)
}
