package simagent

import (
	"context"
	"net"

	"google.golang.org/grpc/credentials"
)

// CountHandshakes wraps the transport credentials the nodes' connections
// use (DialFunc's), so that the fleet's Stats count their handshakes:
// completed, of which resumed (a TLS session ticket accepted), and failed
// (a deadline, a refused or reset connection during the handshake). gRPC
// retries a broken connection by itself, so a failed session open may hide
// several handshakes; these count every one.
func (f *Fleet) CountHandshakes(c credentials.TransportCredentials) credentials.TransportCredentials {
	return countingCreds{TransportCredentials: c, st: &f.stats}
}

type countingCreds struct {
	credentials.TransportCredentials
	st *counters
}

func (c countingCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, conn)
	if err != nil {
		c.st.handshakesFailed.Add(1)
		return out, info, err
	}
	c.st.handshakes.Add(1)
	if ti, ok := info.(credentials.TLSInfo); ok && ti.State.DidResume {
		c.st.handshakesResumed.Add(1)
	}
	return out, info, nil
}

func (c countingCreds) Clone() credentials.TransportCredentials {
	return countingCreds{TransportCredentials: c.TransportCredentials.Clone(), st: c.st}
}
