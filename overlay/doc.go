// Package overlay will hold the node-local network plumbing of overlay
// networks: per network a namespace with a bridge and a VXLAN device, veths
// for task containers, permanent FDB/ARP entries programmed from a peer
// table spread with memberlist, and the service DNS server tasks use
// (DESIGN.md, Networking).
//
// It has no code yet: overlay networks are roadmap item 5. Until then each
// node gives its tasks addresses on a node-local bridge (worker/containerd),
// and `network create -d overlay` records the network without a data plane.
// The package exists so the import rules of DESIGN.md are checked from the
// start: overlay may import only proto.
package overlay
