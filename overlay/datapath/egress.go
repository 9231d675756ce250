package datapath

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"

	"github.com/shoal-project/shoal/errdefs"
)

// egressTablePrefix starts the name of each egress table.
const egressTablePrefix = "shoal-egress-"

// ipForwardPath is the IPv4 forwarding switch of the calling thread's
// network namespace.
var ipForwardPath = "/proc/sys/net/ipv4/ip_forward"

// EgressTable is the name of the nftables table EnsureEgress makes for
// bridge.
func EgressTable(bridge string) string { return egressTablePrefix + bridge }

// EnsureEgress gives the tasks on a node-local bridge access to the outside
// (docker_gwbridge's role): in the calling thread's network namespace it
// replaces, in one transaction, the table "shoal-egress-BRIDGE" (family ip)
// holding a postrouting NAT chain with
//
//	ip saddr SUBNET oifname != BRIDGE masquerade
//
// and it turns IPv4 forwarding on. It is idempotent.
func EnsureEgress(bridge string, subnet netip.Prefix) error {
	if err := validIfName(bridge); err != nil {
		return fmt.Errorf("egress: %w", err)
	}
	if !subnet.IsValid() || !subnet.Addr().Unmap().Is4() {
		return errdefs.InvalidArgument("egress for %s: subnet %q is not an IPv4 prefix", bridge, subnet)
	}
	subnet = netip.PrefixFrom(subnet.Addr().Unmap(), subnet.Bits()).Masked()
	c, closeConn, err := egressConn()
	if err != nil {
		return fmt.Errorf("egress for %s: %w", bridge, err)
	}
	defer closeConn()

	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: EgressTable(bridge)}
	// Add (a no-op if it exists), delete, add: the batch replaces the table
	// atomically whether or not it existed.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	ch := c.AddChain(&nftables.Chain{
		Name:     "postrouting",
		Table:    t,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
	})
	m := maskBytes(subnet.Bits())
	a := subnet.Addr().As4()
	c.AddRule(&nftables.Rule{
		Table: t,
		Chain: ch,
		Exprs: []expr.Any{
			// ip saddr SUBNET
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: m[:], Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]},
			// oifname != BRIDGE
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(bridge)},
			&expr.Masq{},
		},
	})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("egress for %s: install nftables table %s: %w", bridge, t.Name, err)
	}
	if err := os.WriteFile(ipForwardPath, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("egress for %s: enable IPv4 forwarding (%s): %w", bridge, ipForwardPath, err)
	}
	return nil
}

// RemoveEgress deletes the table EnsureEgress made for bridge, if any. It
// leaves IPv4 forwarding as it is (other users may need it).
func RemoveEgress(bridge string) error {
	if err := validIfName(bridge); err != nil {
		return fmt.Errorf("egress: %w", err)
	}
	c, closeConn, err := egressConn()
	if err != nil {
		return fmt.Errorf("remove egress for %s: %w", bridge, err)
	}
	defer closeConn()
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return fmt.Errorf("remove egress for %s: list nftables tables: %w", bridge, err)
	}
	name := EgressTable(bridge)
	for _, t := range tables {
		if t.Name == name {
			c.DelTable(t)
			if err := c.Flush(); err != nil {
				return fmt.Errorf("remove egress for %s: delete table %s: %w", bridge, name, err)
			}
			return nil
		}
	}
	return nil
}

// egressConn opens nftables in the calling thread's network namespace.
func egressConn() (*nftables.Conn, func(), error) {
	ns, err := netns.Get()
	if err != nil {
		return nil, nil, fmt.Errorf("open the current network namespace: %w", err)
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		ns.Close()
		return nil, nil, fmt.Errorf("nftables: %w", err)
	}
	return c, func() { _ = c.CloseLasting(); ns.Close() }, nil
}

func maskBytes(bits int) [4]byte {
	var m [4]byte
	for i := 0; i < bits; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// ifname is an interface name as nftables compares it: NUL-padded to
// IFNAMSIZ.
func ifname(n string) []byte {
	b := make([]byte, 16)
	copy(b, n)
	return b
}

// SweepEgress deletes the egress tables (EgressTable) of bridges that no
// longer exist in the calling thread's namespace: what daemons removed or
// killed without cleaning up left behind (their bridge went with their
// cleanup, the table did not). It returns the names of the tables removed.
func SweepEgress() ([]string, error) {
	c, closeConn, err := egressConn()
	if err != nil {
		return nil, fmt.Errorf("sweep egress tables: %w", err)
	}
	defer closeConn()
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, fmt.Errorf("sweep egress tables: list nftables tables: %w", err)
	}
	var gone []string
	for _, t := range tables {
		bridge, ok := strings.CutPrefix(t.Name, egressTablePrefix)
		if !ok || bridge == "" {
			continue
		}
		if _, err := net.InterfaceByName(bridge); err == nil {
			continue
		}
		c.DelTable(t)
		gone = append(gone, t.Name)
	}
	if len(gone) == 0 {
		return nil, nil
	}
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("sweep egress tables: delete %s: %w", strings.Join(gone, ", "), err)
	}
	return gone, nil
}
