package datapath

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/shoal-project/shoal/errdefs"
)

func validIfName(name string) error {
	if name == "" || len(name) > 15 || strings.ContainsAny(name, "/ \t\n:\x00") || name == "." || name == ".." {
		return errdefs.InvalidArgument("interface name %q is not a valid link name (1-15 bytes, no '/', ':' or space)", name)
	}
	return nil
}

// AttachTask connects the task's namespace (bound at taskNetns) to the
// network: a veth pair whose host end sits on the network's br0 (named from
// a hash of netID, taskNetns and ifName) and whose other end is moved into
// the task's namespace, named ifName, with mac, addr and the network's MTU,
// up. It adds no route: the task's default route stays on its eth0.
//
// It is idempotent: a pair already in place is kept (its address, MTU and
// state corrected); a half-made one is replaced. EnsureNetwork must have
// been called for netID. The pair is identified by (netID, taskNetns,
// ifName): DetachTask and later AttachTasks must pass the same taskNetns
// string.
func (d *Datapath) AttachTask(netID, taskNetns, ifName string, addr netip.Prefix, mac net.HardwareAddr) error {
	if err := validID(netID); err != nil {
		return err
	}
	if err := validIfName(ifName); err != nil {
		return err
	}
	if taskNetns == "" {
		return errdefs.InvalidArgument("attach to network %s: the task's namespace path is empty", netID)
	}
	if !addr.IsValid() || !addr.Addr().Unmap().Is4() {
		return errdefs.InvalidArgument("attach to network %s: address %q is not an IPv4 prefix (e.g. 10.0.1.5/24)", netID, addr)
	}
	addr = netip.PrefixFrom(addr.Addr().Unmap(), addr.Bits())
	if len(mac) != 6 || mac[0]&1 != 0 {
		return errdefs.InvalidArgument("attach to network %s: MAC %q is not a unicast Ethernet address", netID, mac)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check(); err != nil {
		return err
	}
	ns, h, err := d.networkHandle(netID, "attach to network "+netID)
	if err != nil {
		return err
	}
	defer ns.Close()
	defer h.Close()
	br, err := h.LinkByName(bridgeName)
	if err != nil {
		return fmt.Errorf("attach to network %s: bridge %s: %w (call EnsureNetwork to repair)", netID, bridgeName, err)
	}
	mtu := br.Attrs().MTU
	tns, err := netns.GetFromPath(taskNetns)
	if err != nil {
		return fmt.Errorf("attach to network %s: open the task's namespace %s: %w", netID, taskNetns, err)
	}
	defer tns.Close()
	th, err := netlink.NewHandleAt(tns)
	if err != nil {
		return fmt.Errorf("attach to network %s: netlink in the task's namespace %s: %w", netID, taskNetns, err)
	}
	defer th.Close()

	hostName := d.cfg.hostVethName(netID, taskNetns, ifName)
	tmpName := d.cfg.tmpPeerName(netID, taskNetns, ifName)
	hostL, herr := h.LinkByName(hostName)
	taskL, terr := th.LinkByName(ifName)
	paired := herr == nil && terr == nil && hostL.Type() == "veth" && taskL.Type() == "veth" &&
		hostL.Attrs().ParentIndex == taskL.Attrs().Index && taskL.Attrs().ParentIndex == hostL.Attrs().Index &&
		bytes.Equal(taskL.Attrs().HardwareAddr, mac)
	if !paired {
		if herr == nil {
			if err := h.LinkDel(hostL); err != nil {
				return fmt.Errorf("attach to network %s: delete stale veth %s: %w", netID, hostName, err)
			}
		}
		// The task end may have gone with the host end.
		if l, err := th.LinkByName(ifName); err == nil {
			if l.Type() != "veth" {
				return errdefs.FailedPrecondition("attach to network %s: the task's namespace already has %s, a %s; choose another interface name", netID, ifName, l.Type())
			}
			if err := th.LinkDel(l); err != nil {
				return fmt.Errorf("attach to network %s: delete stale %s in the task's namespace: %w", netID, ifName, err)
			}
		}
		if l, err := th.LinkByName(tmpName); err == nil {
			_ = th.LinkDel(l)
		}
		veth := &netlink.Veth{
			LinkAttrs:        netlink.LinkAttrs{Name: hostName, MTU: mtu, MasterIndex: br.Attrs().Index},
			PeerName:         tmpName,
			PeerNamespace:    netlink.NsFd(int(tns)),
			PeerMTU:          uint32(mtu),
			PeerHardwareAddr: mac,
		}
		if err := h.LinkAdd(veth); err != nil {
			return fmt.Errorf("attach to network %s: create veth %s: %w", netID, hostName, err)
		}
		if hostL, err = h.LinkByName(hostName); err != nil {
			return fmt.Errorf("attach to network %s: veth %s: %w", netID, hostName, err)
		}
		peer, err := th.LinkByName(tmpName)
		if err != nil {
			_ = h.LinkDel(hostL)
			return fmt.Errorf("attach to network %s: veth peer %s in the task's namespace: %w", netID, tmpName, err)
		}
		if err := th.LinkSetName(peer, ifName); err != nil {
			_ = h.LinkDel(hostL)
			return fmt.Errorf("attach to network %s: rename %s to %s: %w", netID, tmpName, ifName, err)
		}
		if taskL, err = th.LinkByName(ifName); err != nil {
			return fmt.Errorf("attach to network %s: %s in the task's namespace: %w", netID, ifName, err)
		}
		d.cfg.Log.Debug("task attached", "network", netID, "netns", taskNetns, "if", ifName, "addr", addr, "mac", mac.String())
	}

	// Host end: on br0, MTU, up.
	if hostL.Attrs().MasterIndex != br.Attrs().Index {
		if err := h.LinkSetMasterByIndex(hostL, br.Attrs().Index); err != nil {
			return fmt.Errorf("attach to network %s: %s on %s: %w", netID, hostName, bridgeName, err)
		}
	}
	if hostL.Attrs().MTU != mtu {
		if err := h.LinkSetMTU(hostL, mtu); err != nil {
			return fmt.Errorf("attach to network %s: %s mtu %d: %w", netID, hostName, mtu, err)
		}
	}
	if err := h.LinkSetUp(hostL); err != nil {
		return fmt.Errorf("attach to network %s: %s up: %w", netID, hostName, err)
	}

	// Task end: MTU, exactly addr, up; lo up.
	if taskL.Attrs().MTU != mtu {
		if err := th.LinkSetMTU(taskL, mtu); err != nil {
			return fmt.Errorf("attach to network %s: %s mtu %d: %w", netID, ifName, mtu, err)
		}
	}
	addrs, err := th.AddrList(taskL, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("attach to network %s: addresses of %s: %w", netID, ifName, err)
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok && p != addr {
			if err := th.AddrDel(taskL, &a); err != nil {
				return fmt.Errorf("attach to network %s: remove stale address %s from %s: %w", netID, p, ifName, err)
			}
		}
	}
	if err := th.AddrReplace(taskL, &netlink.Addr{IPNet: ipNet(addr.Addr(), addr.Bits())}); err != nil {
		return fmt.Errorf("attach to network %s: address %s on %s: %w", netID, addr, ifName, err)
	}
	if err := th.LinkSetUp(taskL); err != nil {
		return fmt.Errorf("attach to network %s: %s up: %w", netID, ifName, err)
	}
	if lo, err := th.LinkByName("lo"); err == nil {
		if err := th.LinkSetUp(lo); err != nil {
			return fmt.Errorf("attach to network %s: lo up in the task's namespace: %w", netID, err)
		}
	}
	return nil
}

// DetachTask removes the task's veth pair for the network. Whatever is
// already gone (the network, the task's namespace, the pair) is fine.
func (d *Datapath) DetachTask(netID, taskNetns, ifName string) error {
	if err := validID(netID); err != nil {
		return err
	}
	if err := validIfName(ifName); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check(); err != nil {
		return err
	}
	var errs []error
	hostName := d.cfg.hostVethName(netID, taskNetns, ifName)
	if path := d.NetnsPath(netID); isNsfs(path) {
		ns, h, err := nsHandle(path)
		if err != nil {
			errs = append(errs, err)
		} else {
			if l, err := h.LinkByName(hostName); err == nil {
				if err := h.LinkDel(l); err != nil && !isNotFound(err) {
					errs = append(errs, fmt.Errorf("delete veth %s: %w", hostName, err))
				}
			}
			h.Close()
			ns.Close()
		}
	}
	// A task end left without its host end (a crash between the steps).
	if _, err := os.Stat(taskNetns); err == nil {
		if tns, err := netns.GetFromPath(taskNetns); err == nil {
			if th, err := netlink.NewHandleAt(tns); err == nil {
				for _, name := range []string{ifName, d.cfg.tmpPeerName(netID, taskNetns, ifName)} {
					if l, err := th.LinkByName(name); err == nil && l.Type() == "veth" {
						if err := th.LinkDel(l); err != nil && !isNotFound(err) {
							errs = append(errs, fmt.Errorf("delete %s in the task's namespace: %w", name, err))
						}
					}
				}
				th.Close()
			}
			tns.Close()
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("task namespace %s: %w", taskNetns, err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("detach from network %s: %w", netID, err)
	}
	return nil
}
