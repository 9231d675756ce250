// Package datapath is the node's overlay data path, programmed with netlink
// (github.com/vishvananda/netlink) and nftables (github.com/google/nftables).
//
// Per overlay network it keeps a network namespace, bound to a file under
// Config.StateDir/netns so it outlives every process, holding:
//   - "br0", a bridge with the network's gateway address;
//   - "vx0", a VXLAN device (id VNI, dstport Config.Port, local Config.VTEP,
//     no learning, proxy ARP, l2miss, l3miss). It is created in the daemon's
//     namespace, so its UDP socket lives there, and then moved in, as Docker
//     does and as networking/lab.sh verified;
//   - per task attachment the host end of a veth pair on br0; the other end
//     is moved into the task's namespace and named as the caller says
//     ("eth1"), with the task's address, MAC and the network's MTU;
//   - per remote peer a permanent neighbour entry (IP -> MAC) and a permanent
//     FDB entry (MAC -> remote VTEP) on vx0 (SetPeers).
//
// The MTU of a network is Network.MTU, or the MTU of the daemon-namespace
// interface holding Config.VTEP minus 50 (the VXLAN overhead); br0, vx0 and
// every veth get it.
//
// EnsureEgress/RemoveEgress manage the masquerade table that gives tasks
// access to the outside through the node-local bridge (docker_gwbridge's
// role); they act on the calling thread's namespace.
//
// Everything is idempotent and found again from the kernel and StateDir
// alone: a restarted daemon calls New on the same StateDir, Networks to see
// what exists, EnsureNetwork to adopt what it still needs and RemoveNetwork
// for the rest.
//
// Namespaces: the "daemon namespace" (where VXLAN sockets live and the
// underlay interface is looked up) is the network namespace of the thread
// that calls New; Datapath keeps a handle on it until Close, so later calls
// may come from any goroutine. Tests run a Datapath per simulated host by
// calling New from a thread locked into that host's namespace.
//
// Concurrency: a Datapath is safe for concurrent use; its methods serialise
// on one mutex (each call is a few netlink round trips). It starts no
// goroutines that outlive a call. Two Datapaths on the same StateDir or the
// same LinkPrefix in one namespace must not run at once.
package datapath
