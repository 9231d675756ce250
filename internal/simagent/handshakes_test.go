package simagent

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
)

// CountHandshakes counts each completed handshake, the resumed ones among
// them, and the ones that fail.
func TestCountHandshakes(t *testing.T) {
	ca, err := pki.NewRootCA(nil)
	if err != nil {
		t.Fatal(err)
	}
	keyPair := func(id string, role api.NodeRole) *pki.KeyPair {
		return testutil.KeyPair(t, ca, id, role, "cluster1")
	}
	srvCfg := pki.ServerConfig(keyPair("mgr1", api.NodeRole_MANAGER), ca.Pool(), pki.NewTicketKeys())
	srvCfg.NextProtos = []string{"h2"} // gRPC's client insists on it
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	refuse := make(chan bool, 4) // per connection: close it instead of a handshake
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			if <-refuse {
				c.Close()
				continue
			}
			go func() {
				defer c.Close()
				s := tls.Server(c, srvCfg)
				if s.Handshake() == nil {
					_, _ = s.Write([]byte{1}) // the client's read takes the ticket in
					_, _ = s.Read(make([]byte, 1))
				}
			}()
		}
	}()
	f := New(Config{Managers: func() []string { return nil }})
	defer f.Close()
	creds := f.CountHandshakes(credentials.NewTLS(pki.ClientConfig(keyPair("node1", api.NodeRole_WORKER), ca.Pool(), pki.ManagerServerName)))
	connect := func(refused bool) error {
		refuse <- refused
		raw, err := net.Dial("tcp", lis.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, _, err := creds.Clone().ClientHandshake(ctx, pki.ManagerServerName, raw)
		if err != nil {
			raw.Close()
			return err
		}
		defer c.Close()
		_, err = c.Read(make([]byte, 1))
		return err
	}
	for range 3 {
		if err := connect(false); err != nil {
			t.Fatal(err)
		}
	}
	if err := connect(true); err == nil {
		t.Fatal("a handshake with a server that closed the connection succeeded")
	}
	st := f.Stats()
	if st.Handshakes != 3 || st.HandshakesResumed != 2 || st.HandshakesFailed != 1 {
		t.Fatalf("handshakes %d, resumed %d, failed %d; want 3, 2, 1", st.Handshakes, st.HandshakesResumed, st.HandshakesFailed)
	}
}
