package datapath

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/shoal-project/shoal/errdefs"
)

// SetPeers makes the network's remote peers exactly peers: for each a
// permanent neighbour entry (IP -> MAC, `ip neigh replace … nud permanent`)
// and a permanent FDB entry (MAC -> VTEP, `bridge fdb replace … self
// permanent`) on vx0. It reads what the kernel has and changes only the
// difference: missing or changed entries are replaced, and permanent entries
// on vx0 that peers does not hold are deleted (vx0 lives in the network's
// own namespace, so every permanent entry on it is this package's).
//
// Peers whose VTEP is this node's own are skipped (local tasks are reached
// through br0). When two peers share an IP or a MAC, the later one wins.
func (d *Datapath) SetPeers(netID string, peers []Peer) error {
	if err := validID(netID); err != nil {
		return err
	}
	wantNeigh := map[netip.Addr]net.HardwareAddr{}
	wantFDB := map[string]netip.Addr{} // MAC string -> VTEP
	for _, p := range peers {
		ip, vtep := p.IP.Unmap(), p.VTEP.Unmap()
		if !ip.Is4() || !vtep.Is4() || len(p.MAC) != 6 || p.MAC[0]&1 != 0 {
			return errdefs.InvalidArgument("network %s: peer {IP %s, MAC %s, VTEP %s} is not an IPv4 address, unicast MAC and IPv4 VTEP", netID, p.IP, p.MAC, p.VTEP)
		}
		if vtep == d.cfg.VTEP {
			continue
		}
		wantNeigh[ip] = p.MAC
		wantFDB[p.MAC.String()] = vtep
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check(); err != nil {
		return err
	}
	ns, h, err := d.networkHandle(netID, "set peers of network "+netID)
	if err != nil {
		return err
	}
	defer ns.Close()
	defer h.Close()
	vx, err := h.LinkByName(vxlanName)
	if err != nil {
		return fmt.Errorf("set peers of network %s: %s: %w (call EnsureNetwork to repair)", netID, vxlanName, err)
	}
	idx := vx.Attrs().Index
	var errs []error
	added, removed := 0, 0

	// Neighbour entries (IP -> MAC).
	neighs, err := neighList(h, idx, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("set peers of network %s: list neighbours on %s: %w", netID, vxlanName, err)
	}
	haveNeigh := map[netip.Addr]bool{}
	for _, n := range neighs {
		if n.LinkIndex != idx || n.State&netlink.NUD_PERMANENT == 0 {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if mac, want := wantNeigh[ip]; want && bytes.Equal(mac, n.HardwareAddr) {
			haveNeigh[ip] = true
			continue
		}
		if err := h.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete neighbour %s on %s: %w", ip, vxlanName, err))
			continue
		}
		removed++
	}
	for ip, mac := range wantNeigh {
		if haveNeigh[ip] {
			continue
		}
		n := &netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
			IP: net.IP(ip.AsSlice()), HardwareAddr: mac}
		if err := h.NeighSet(n); err != nil {
			errs = append(errs, fmt.Errorf("neighbour %s lladdr %s on %s: %w", ip, mac, vxlanName, err))
			continue
		}
		added++
	}

	// FDB entries (MAC -> VTEP), on the VXLAN device itself ("self").
	fdb, err := neighList(h, idx, unix.AF_BRIDGE)
	if err != nil {
		return fmt.Errorf("set peers of network %s: list FDB on %s: %w", netID, vxlanName, err)
	}
	byMAC := map[string][]netlink.Neigh{}
	for _, f := range fdb {
		if f.LinkIndex != idx || f.Flags&netlink.NTF_SELF == 0 || f.Flags&netlink.NTF_MASTER != 0 ||
			f.State&netlink.NUD_PERMANENT == 0 || len(f.HardwareAddr) != 6 {
			continue
		}
		byMAC[f.HardwareAddr.String()] = append(byMAC[f.HardwareAddr.String()], f)
	}
	haveFDB := map[string]bool{}
	for mac, entries := range byMAC {
		if vtep, want := wantFDB[mac]; want && len(entries) == 1 {
			if dst, ok := netip.AddrFromSlice(entries[0].IP); ok && dst.Unmap() == vtep {
				haveFDB[mac] = true
				continue
			}
		}
		for _, f := range entries {
			del := &netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
				State: f.State, IP: f.IP, HardwareAddr: f.HardwareAddr}
			if err := h.NeighDel(del); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("delete FDB %s dst %s on %s: %w", mac, f.IP, vxlanName, err))
				continue
			}
			removed++
		}
	}
	for mac, vtep := range wantFDB {
		if haveFDB[mac] {
			continue
		}
		hw, _ := net.ParseMAC(mac)
		f := &netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
			State: netlink.NUD_PERMANENT, IP: net.IP(vtep.AsSlice()), HardwareAddr: hw}
		if err := h.NeighSet(f); err != nil {
			errs = append(errs, fmt.Errorf("FDB %s dst %s on %s: %w", mac, vtep, vxlanName, err))
			continue
		}
		added++
	}
	if added+removed > 0 {
		d.cfg.Log.Debug("overlay peers programmed", "network", netID, "peers", len(wantNeigh), "added", added, "removed", removed)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("set peers of network %s: %w", netID, err)
	}
	return nil
}
