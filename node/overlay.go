package node

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/ingress/mesh"
	"github.com/shoal-project/shoal/ingress/vip"
	"github.com/shoal-project/shoal/overlay"
	api "github.com/shoal-project/shoal/proto"
)

// OverlayConfig turns on a node's overlay networks (package overlay).
type OverlayConfig struct {
	// DataPathAddr is the node's address for VXLAN and gossip: an IPv4
	// address or an interface name (its first IPv4 address). Empty: the
	// host of the advertise address. `swarm init|join --data-path-addr`
	// overrides it, and is kept across restarts.
	DataPathAddr string
	// GossipPort is memberlist's TCP and UDP port. Default
	// overlay.DefaultGossipPort (7946).
	GossipPort int
	// New builds the agent; nil: overlay.New. Tests give one with fake
	// libraries.
	New func(overlay.Config) (*overlay.Agent, error)
}

func (n *Node) overlayDir() string { return filepath.Join(n.cfg.DataDir, "overlay") }

// resolveDataPath turns a data path address (IP or interface name) into
// an IPv4 address.
func resolveDataPath(s string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		if !a.Unmap().Is4() || a.IsUnspecified() {
			return netip.Addr{}, errdefs.InvalidArgument("data path address %q: want a specific IPv4 address or an interface name", s)
		}
		return a.Unmap(), nil
	}
	ip, err := interfaceIP(s)
	if err != nil {
		return netip.Addr{}, errdefs.InvalidArgument("data path address %q: not an IPv4 address, and as an interface: %v", s, err)
	}
	return netip.MustParseAddr(ip), nil
}

// dataPathAddr is the node's data path address: init/join's, else the
// flag's, else the advertise address's host.
func (n *Node) dataPathAddr(state *nodeState) (netip.Addr, error) {
	given := state.DataPathAddr
	if given == "" && n.cfg.Overlay != nil {
		given = n.cfg.Overlay.DataPathAddr
	}
	if given == "" {
		host, _, err := net.SplitHostPort(state.AdvertiseAddr)
		if err != nil {
			host = state.AdvertiseAddr
		}
		given = host
	}
	return resolveDataPath(given)
}

// linkPrefix names the node's overlay links after its ID, so nodes that
// share a host (tests, labs) never collide: "o" and 3 characters of the ID.
func linkPrefix(nodeID string) string {
	var b strings.Builder
	b.WriteString("o")
	for _, r := range strings.ToLower(nodeID) {
		if b.Len() == 4 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// openOverlay builds the node's overlay agent, not started; nil when the
// node has no overlay configured or it cannot be built (logged: tasks on
// networks are then rejected with a clear error, the rest runs).
func (n *Node) openOverlay(nodeID string, state *nodeState, onPeersBack func()) *overlay.Agent {
	oc := n.cfg.Overlay
	if oc == nil {
		return nil
	}
	addr, err := n.dataPathAddr(state)
	if err != nil {
		n.log.Error("overlay networks are off on this node: no usable data path address (set --data-path-addr)", "err", err)
		return nil
	}
	newAgent := oc.New
	if newAgent == nil {
		newAgent = overlay.New
	}
	a, err := newAgent(overlay.Config{
		NodeID: nodeID, DataPathAddr: addr, GossipPort: oc.GossipPort,
		StateDir: n.overlayDir(), LinkPrefix: linkPrefix(nodeID), Log: n.log.With("component", "overlay"),
		VIP: vipLib{}, Mesh: meshLib{}, OnPeersBack: onPeersBack,
	})
	if err != nil {
		n.log.Error("overlay networks are off on this node", "err", err)
		return nil
	}
	return a
}

// startOverlay adopts what a previous daemon left, knowing the executor's
// live tasks (unknown if they cannot be listed: nothing is removed then).
func (n *Node) startOverlay(ctx context.Context, ov *overlay.Agent, exec Executor) error {
	ids, err := exec.Tasks(ctx)
	if err != nil {
		n.log.Warn("overlay: cannot list the live tasks; stale networks stay until their tasks leave", "err", err)
		ids = nil
	} else if ids == nil {
		ids = []string{}
	}
	if err := ov.Start(ctx, ids); err != nil {
		return fmt.Errorf("start the overlay: %w", err)
	}
	return nil
}

// sessions hands session messages to the overlay from a goroutine of its
// own (joining the gossip may take seconds); the latest message replaces
// one not yet taken.
type sessions struct {
	c     chan *api.SessionMessage
	nodes chan *api.Node
}

func newSessions() *sessions {
	return &sessions{c: make(chan *api.SessionMessage, 1), nodes: make(chan *api.Node, 1)}
}

// putNode hands the node's object (its ingress attachment) to the
// overlay; the latest replaces one not yet taken.
func (s *sessions) putNode(n *api.Node) {
	select {
	case <-s.nodes:
	default:
	}
	select {
	case s.nodes <- n:
	default:
	}
}

func (s *sessions) put(m *api.SessionMessage) {
	select {
	case <-s.c:
	default:
	}
	select {
	case s.c <- m:
	default:
	}
}

func (s *sessions) run(ctx context.Context, ov *overlay.Agent) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-s.c:
			ov.Session(m)
		case n := <-s.nodes:
			ov.SetNode(n)
		}
	}
}

// vipLib is ingress/vip as the overlay agent uses it (overlay may not
// import ingress; node joins them).
type vipLib struct{}

func (vipLib) Apply(netnsPath string, services []overlay.Service) error {
	ss := make([]vip.Service, len(services))
	for i, s := range services {
		ss[i] = vip.Service(s)
	}
	return vip.Apply(netnsPath, ss)
}
func (vipLib) Remove(netnsPath string) error { return vip.Remove(netnsPath) }
func (vipLib) FlushConntrack(netnsPath string, backend netip.Addr) error {
	return vip.FlushConntrack(netnsPath, backend)
}

// meshLib is ingress/mesh as the overlay agent uses it.
type meshLib struct{}

func (meshLib) Apply(netnsPath string, ports []overlay.MeshPort) error {
	ps := make([]mesh.Port, len(ports))
	for i, p := range ports {
		ps[i] = mesh.Port(p)
	}
	return mesh.Apply(netnsPath, ps)
}
func (meshLib) Remove(netnsPath string) error { return mesh.Remove(netnsPath) }
func (meshLib) EnableLocalhost(netnsPath string, ifNames ...string) error {
	return mesh.EnableLocalhost(netnsPath, ifNames...)
}
func (meshLib) FlushConntrack(netnsPath string, backend netip.Addr) error {
	return mesh.FlushConntrack(netnsPath, backend)
}
func (meshLib) ApplyReturn(netnsPath string, r overlay.MeshReturn) error {
	nodes := make([]mesh.IngressNode, len(r.Nodes))
	for i, n := range r.Nodes {
		nodes[i] = mesh.IngressNode(n)
	}
	return mesh.ApplyReturn(netnsPath, mesh.Return{Interface: r.Interface, Subnet: r.Subnet, Nodes: nodes, UDPPorts: r.UDPPorts})
}
func (meshLib) RemoveReturn(netnsPath string) error { return mesh.RemoveReturn(netnsPath) }
