package testcluster

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"

	"github.com/shoal-project/shoal/internal/simagent"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// AddSimNodes joins n simulated worker nodes ("s0", "s1", ...;
// internal/simagent) and starts them: each gets a node certificate from
// the cluster's CA and its Node object (recorded in batches, as
// AddAgents), and connects over mTLS on the in-memory network like a real
// agent, but keeps no containers. The fleet stops in Close, before the
// agents. It does not wait for the nodes to be READY (see WaitNodesReady).
// It needs Options.WallClock: simulated nodes heartbeat on the wall clock,
// and a pumped fake clock would run the dispatcher's deadlines ahead of
// them.
func (c *Cluster) AddSimNodes(n int) *simagent.Fleet {
	c.tb.Helper()
	if c.fake != nil {
		c.tb.Fatal("testcluster: AddSimNodes needs Options.WallClock")
	}
	// The managers' addresses as they are now (a manager added later is
	// not dialled; a stopped one refuses, and the node tries the next):
	// read at every dial, c.Managers() put thousands of reconnecting
	// nodes in a queue on the cluster's lock, which AddSimNodes itself
	// takes for every node's ID (a 10,000-node join under load crawled).
	var addrs []string
	for _, m := range c.Managers() {
		addrs = append(addrs, m.Addr)
	}
	f := simagent.New(simagent.Config{
		Managers: func() []string { return addrs },
		Logger:   c.log,
	})
	c.mu.Lock()
	c.fleets = append(c.fleets, f)
	c.mu.Unlock()
	c.joinSimNodes(n, c.recordSimNodes, func(s simNode) {
		kp, err := pki.NewKeyPair(s.cert, s.key)
		if err == nil {
			_, err = f.Add(s.id, s.name, c.simDial(s.name, kp))
		}
		if err != nil {
			c.tb.Fatal(err)
		}
	})
	return f
}

// simNode is a simulated node's identity, as a join gives it.
type simNode struct {
	id, name  string
	cert, key []byte // PEM
}

// joinSimNodes makes n simulated nodes' identities ("s0", "s1", ...),
// records their Node objects in batches of 500, and hands each node of a
// recorded batch to start.
func (id *identity) joinSimNodes(n int, record func([]simNode), start func(simNode)) {
	id.tb.Helper()
	for done := 0; done < n; {
		batch := make([]simNode, 0, min(n-done, 500))
		for len(batch) < cap(batch) {
			s := simNode{id: id.newID(), name: fmt.Sprintf("s%d", done+len(batch))}
			s.cert, s.key = id.issuePEM(s.id, api.NodeRole_WORKER)
			batch = append(batch, s)
		}
		record(batch)
		for _, s := range batch {
			start(s)
		}
		done += len(batch)
	}
}

// recordSimNodes writes the Node objects of batch.
func (c *Cluster) recordSimNodes(batch []simNode) {
	c.tb.Helper()
	// Thousands of connecting nodes load the process: a leader may
	// lose its lease meanwhile. The write is retried on the next
	// leader (after a pause: an election takes a second or more),
	// creating only the nodes that are not there yet, for up to
	// Options.WallLimit.
	var err error
	deadline := time.Now().Add(c.opts.WallLimit)
	for attempt := 1; ; attempt++ {
		// The manager that says it leads first, then the others in
		// turn: one may still say so while another leads already.
		m := c.Leader()
		if attempt > 1 {
			ms := c.Managers()
			m = ms[attempt%len(ms)]
		}
		if mgr := m.Manager(); mgr != nil {
			ctx, cancel := context.WithTimeout(context.Background(), min(c.opts.WallLimit, 30*time.Second))
			err = mgr.Store().Update(ctx, func(tx *raftstore.Tx) error {
				for _, s := range batch {
					if tx.Node(s.id) != nil {
						continue
					}
					if err := tx.Create(c.nodeObject(s.id, s.name, api.NodeRole_WORKER)); err != nil {
						return err
					}
				}
				return nil
			})
			cancel()
			if err == nil {
				return
			}
			c.tb.Logf("record %d simulated nodes (attempt %d): %v", len(batch), attempt, err)
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("record %d simulated nodes: not within %v: %v", len(batch), c.opts.WallLimit, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// simDial is a simulated node's DialFunc on the in-memory network.
func (c *Cluster) simDial(name string, kp *pki.KeyPair) simagent.DialFunc {
	return simDialer(credentials.NewTLS(pki.ClientConfig(kp, c.ca.Pool(), pki.ManagerServerName)),
		func(ctx context.Context, a string) (net.Conn, error) { return c.net.dial(ctx, name, a) })
}

// simDialer is a simulated node's DialFunc: a new connection at each call
// (the node keeps it across its sessions), with the node's TLS
// credentials, over connections that dial makes.
func simDialer(creds credentials.TransportCredentials, dial func(context.Context, string) (net.Conn, error)) simagent.DialFunc {
	return func(_ context.Context, addr string) (*grpc.ClientConn, error) {
		return grpc.NewClient("passthrough:///"+addr,
			grpc.WithContextDialer(dial),
			grpc.WithTransportCredentials(creds),
			// No 32 KiB read buffer per node: TLS buffers each record
			// already, and an idle node's connection should cost little.
			grpc.WithReadBufferSize(0),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)),
			// A handshake may take seconds while thousands of nodes
			// connect on two cores: cut off at 2 s, nodes kept retrying.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
				MinConnectTimeout: 10 * time.Second,
			}),
		)
	}
}

// SimFleet is a fleet of simulated nodes: a *simagent.Fleet in this
// process or a *FleetProcess.
type SimFleet interface {
	NodeIDs() []string
	Stats() simagent.Stats
}

// WaitNodesReady waits until every node of the fleet is READY in the
// store, for up to within of cluster time.
func (c *Cluster) WaitNodesReady(f SimFleet, within time.Duration) {
	c.tb.Helper()
	c.WaitFor("every simulated node to be READY", within, func() error {
		ready, total := 0, 0
		nodes := c.Nodes()
		for _, id := range f.NodeIDs() {
			total++
			if nodes[id].GetStatus().GetState() == api.NodeStatus_READY {
				ready++
			}
		}
		if ready < total {
			return fmt.Errorf("%d of %d simulated nodes READY", ready, total)
		}
		return nil
	})
}
