// Package overlay is a node's share of the overlay networks: its Agent
// composes the four libraries beside it (datapath: namespaces, bridges,
// VXLAN, veths, FDB; gossip: the memberlist peer and endpoint table; dns:
// the embedded resolver at 127.0.0.11; ingress/vip: the nftables VIP load
// balancer of each task's namespace) and is driven by worker/containerd's
// controller at each life event of a task (Attach, Serving, Draining, Gone,
// Detach) and by node/ with each session message (Session).
//
// The libraries are reached through small interfaces defined here
// (libs.go: Datapath, Gossip, DNS, VIP), so the Agent's logic is tested
// with fakes; real.go binds the real datapath, gossip and dns. The VIP
// library is ingress/vip, another layer that overlay may not import
// (DESIGN.md): the caller gives it in Config.VIP (node/ adapts it).
//
// The routing mesh (published ports) is ingress/mesh, given likewise in
// Config.Mesh: the node's own ingress attachment (SetNode, from the Node
// object the managers send) becomes a veth into the ingress network, every
// node serves every ingress-mode port with the serving tasks of all nodes
// (their gossip entries carry the ports), host-mode ports with the local
// tasks only, and every local task on the ingress network gets a return
// path through every node (mesh.go). A removed service's tasks take their
// ports out at once (ServiceRemoved). A restarted daemon adopts the node's
// ingress veth, the published ports' table and its tasks' serving state as
// they are (meshstate.go).
//
// Files: config.go (Config), agent.go (Agent: task events, Session,
// Start/Close), program.go (programming loop, Resolve), mesh.go (routing
// mesh: SetNode, SetHostAddr, published ports, return paths), meshstate.go
// (the mesh across a restart), state.go (task records for restart
// adoption), libs.go, real.go.
//
// Concurrency: every exported method of Agent is safe for concurrent use.
// The Agent owns one goroutine, the programming loop, started by Start and
// stopped by Close: it is woken (coalesced) by gossip changes and runs a
// resync every Config.ResyncPeriod as anti-entropy (the peers and the mesh
// table, and the tables of the next resyncTasks local tasks in turn, so
// that a resync on a busy node stays short). Draining and Gone
// also program synchronously in the caller, so a task leaves the local VIPs
// and DNS before they return. Programming runs are serialized.
package overlay
