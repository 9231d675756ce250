package nftconn

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// BufferBytes is the send and receive buffer each connection asks for:
// enough for one transaction of several thousand published ports.
const BufferBytes = 32 << 20

// New opens an nftables connection, in the network namespace whose file
// descriptor is nsFD (-1: the caller's), with BufferBytes socket buffers.
func New(nsFD int) (*nftables.Conn, error) {
	opts := []nftables.ConnOption{nftables.WithSockOptions(setBuffers)}
	if nsFD >= 0 {
		opts = append(opts, nftables.WithNetNSFd(nsFD))
	}
	return nftables.New(opts...)
}

// setBuffers raises the socket's buffers, beyond the sysctl limits when the
// process may (CAP_NET_ADMIN), else up to them.
func setBuffers(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for _, o := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
			e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[0], BufferBytes)
			if errors.Is(e, unix.EPERM) {
				e = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[1], BufferBytes)
			}
			if e != nil {
				serr = fmt.Errorf("netlink socket buffer: %w", e)
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
}
