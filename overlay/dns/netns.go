package dns

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TableName is the nftables table (family ip) the server owns in each task
// namespace.
const TableName = "shoal-dns"

// listenIP is the address tasks query (127.0.0.11).
var listenIP = net.IPv4(127, 0, 0, 11).To4()

// openInNetns sets the namespace's loopback up and opens, inside it, a UDP
// and a TCP socket on 127.0.0.11 with random ports.
func openInNetns(path string) (net.PacketConn, net.Listener, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, nil, fmt.Errorf("dns: open network namespace %s: %w (is the task's namespace there?)", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, nil, fmt.Errorf("dns: netlink handle in %s: %w", path, err)
	}
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	h.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("dns: set loopback up in %s: %w", path, err)
	}

	var pc net.PacketConn
	var ln net.Listener
	err = inNetns(ns, func() error {
		var err error
		if pc, err = net.ListenPacket("udp4", net.JoinHostPort(listenIP.String(), "0")); err != nil {
			return err
		}
		if ln, err = net.Listen("tcp4", net.JoinHostPort(listenIP.String(), "0")); err != nil {
			pc.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("dns: open 127.0.0.11 sockets in %s: %w", path, err)
	}
	return pc, ln, nil
}

// inNetns runs f on a thread switched into ns and switches back; if the
// switch back fails the thread stays locked, so the runtime discards it
// with the goroutine instead of reusing it in the wrong namespace.
func inNetns(ns netns.NsHandle, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter namespace: %w", err)
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("return to the daemon's namespace: %w", err))
			return // the goroutine ends locked: its thread is discarded
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// installDNAT atomically (re)creates, in the namespace at path, the table
// that DNATs 127.0.0.11:53 to the given ports:
//
//	table ip shoal-dns {
//		chain output {
//			type nat hook output priority -100; policy accept;
//			ip daddr 127.0.0.11 udp dport 53 dnat to 127.0.0.11:UDP
//			ip daddr 127.0.0.11 tcp dport 53 dnat to 127.0.0.11:TCP
//		}
//	}
func installDNAT(path string, udpPort, tcpPort uint16) error {
	return withConn(path, func(c *nftables.Conn) error {
		t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName}
		c.AddTable(t)
		c.DelTable(t)
		c.AddTable(t)
		ch := c.AddChain(&nftables.Chain{Table: t, Name: "output", Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest})
		for _, r := range []struct {
			proto byte
			port  uint16
		}{{unix.IPPROTO_UDP, udpPort}, {unix.IPPROTO_TCP, tcpPort}} {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: listenIP},
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{r.proto}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(53)},
				&expr.Immediate{Register: 1, Data: listenIP},
				&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(r.port)},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4,
					RegAddrMin: 1, RegProtoMin: 2, Specified: true},
			}})
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("dns: install table %s in %s: %w", TableName, path, err)
		}
		return nil
	})
}

// removeDNAT deletes the table if the namespace still exists.
func removeDNAT(path string) error {
	if _, err := os.Stat(path); err != nil {
		return nil // the namespace is gone, and the table with it
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil // not a namespace any more (unmounted bind mount)
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err == nil {
		t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName}
		c.AddTable(t)
		c.DelTable(t)
		err = c.Flush()
	}
	if err != nil {
		return fmt.Errorf("dns: delete table %s in %s: %w", TableName, path, err)
	}
	return nil
}

func withConn(path string, f func(c *nftables.Conn) error) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("dns: open network namespace %s: %w", path, err)
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return fmt.Errorf("dns: nftables connection into %s: %w", path, err)
	}
	return f(c)
}
