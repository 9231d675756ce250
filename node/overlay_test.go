package node

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/shoal-project/shoal/overlay"
	api "github.com/shoal-project/shoal/proto"
)

// nopLibs are overlay libraries that record the gossip configs and do
// nothing else.
type nopLibs struct {
	mu      sync.Mutex
	cfg     overlay.Config
	gossips []overlay.GossipConfig
}

func (l *nopLibs) newAgent(c overlay.Config) (*overlay.Agent, error) {
	c.NewDatapath = func(overlay.DatapathConfig) (overlay.Datapath, error) { return nopDP{}, nil }
	c.NewGossip = func(g overlay.GossipConfig) (overlay.Gossip, error) {
		l.mu.Lock()
		l.gossips = append(l.gossips, g)
		l.mu.Unlock()
		return nopGossip{}, nil
	}
	c.NewDNS = func(overlay.DNSConfig) (overlay.DNS, error) { return nopDNS{}, nil }
	c.VIP = nopVIP{}
	l.mu.Lock()
	l.cfg = c
	l.mu.Unlock()
	return overlay.New(c)
}

func (l *nopLibs) state() (overlay.Config, []overlay.GossipConfig) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cfg, append([]overlay.GossipConfig(nil), l.gossips...)
}

type nopDP struct{}

func (nopDP) EnsureNetwork(overlay.Network) error                                     { return nil }
func (nopDP) AttachTask(string, string, string, netip.Prefix, net.HardwareAddr) error { return nil }
func (nopDP) DetachTask(string, string, string) error                                 { return nil }
func (nopDP) SetPeers(string, []overlay.Peer) error                                   { return nil }
func (nopDP) RemoveNetwork(string) error                                              { return nil }
func (nopDP) Networks() ([]string, error)                                             { return nil, nil }
func (nopDP) Close() error                                                            { return nil }

type nopGossip struct{}

func (nopGossip) Members() []string              { return nil }
func (nopGossip) Join([]string) (int, error)     { return 0, nil }
func (nopGossip) Publish(overlay.Entry)          {}
func (nopGossip) Withdraw(string, string)        {}
func (nopGossip) Entries(string) []overlay.Entry { return nil }
func (nopGossip) DropNode(string)                {}
func (nopGossip) RestoreNode(string)             {}
func (nopGossip) Close() error                   { return nil }

type nopDNS struct{}

func (nopDNS) AddTask(string, string) error { return nil }
func (nopDNS) RemoveTask(string) error      { return nil }
func (nopDNS) Close() error                 { return nil }

type nopVIP struct{}

func (nopVIP) Apply(string, []overlay.Service) error   { return nil }
func (nopVIP) Remove(string) error                     { return nil }
func (nopVIP) FlushConntrack(string, netip.Addr) error { return nil }

// A node in a swarm builds its overlay agent on init's data path address,
// hands it to its executor, and starts the gossip with the cluster's
// network key from its session.
func TestOverlayAgentWiring(t *testing.T) {
	libs := &nopLibs{}
	exec := newFakeExec()
	dir := t.TempDir()
	n1 := startNodeWith(t, dir, freeAddr(t), exec, func(c *Config) {
		c.Overlay = &OverlayConfig{DataPathAddr: "192.0.2.99", New: libs.newAgent}
	})
	if _, err := n1.local.Init(n1.ctx(), &api.InitRequest{ListenAddr: n1.addr, AdvertiseAddr: n1.addr, DataPathAddr: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the gossip to start with the cluster's key", func() error {
		_, gs := libs.state()
		if len(gs) == 0 {
			return fmt.Errorf("no gossip yet")
		}
		if len(gs[0].Key) != 32 {
			return fmt.Errorf("gossip key of %d bytes", len(gs[0].Key))
		}
		return nil
	})
	cfg, gs := libs.state()
	// init's --data-path-addr wins over the daemon's flag.
	if cfg.DataPathAddr != netip.MustParseAddr("127.0.0.1") || gs[0].BindAddr != cfg.DataPathAddr {
		t.Errorf("data path address %v, gossip bound to %v", cfg.DataPathAddr, gs[0].BindAddr)
	}
	if !strings.HasPrefix(cfg.LinkPrefix, "o") || len(cfg.LinkPrefix) != 4 || cfg.GossipPort != 0 && cfg.GossipPort != overlay.DefaultGossipPort {
		t.Errorf("link prefix %q, gossip port %d", cfg.LinkPrefix, cfg.GossipPort)
	}
	exec.mu.Lock()
	ovs := append([]*overlay.Agent(nil), exec.overlays...)
	exec.mu.Unlock()
	if len(ovs) == 0 || ovs[len(ovs)-1] == nil {
		t.Fatalf("the executor was opened without the overlay agent: %v", ovs)
	}
	b, err := os.ReadFile(n1.n.statePath())
	if err != nil {
		t.Fatal(err)
	}
	var st nodeState
	if err := json.Unmarshal(b, &st); err != nil || st.DataPathAddr != "127.0.0.1" {
		t.Errorf("state.json data path address %q (%v)", st.DataPathAddr, err)
	}
}

func TestResolveDataPath(t *testing.T) {
	if a, err := resolveDataPath("192.0.2.1"); err != nil || a.String() != "192.0.2.1" {
		t.Errorf("IP: %v %v", a, err)
	}
	if a, err := resolveDataPath("lo"); err != nil || a.String() != "127.0.0.1" {
		t.Errorf("interface lo: %v %v", a, err)
	}
	for _, bad := range []string{"0.0.0.0", "::1", "no-such-if0"} {
		if _, err := resolveDataPath(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if p := linkPrefix("AB-9xyz"); p != "oab9" {
		t.Errorf("linkPrefix = %q", p)
	}
}
