// Package testcluster runs a whole shoal cluster in one process, for the
// harness tier of tests (DESIGN.md, testing level 2): N managers
// (manager.Manager, each a raft member on a raftstore.MemNetwork and a gRPC
// server on an in-memory bufconn network) and M agents (the real
// worker.Agent with a fakeexec.Executor) that speak the real dispatcher
// protocol to the managers over mTLS with certificates from the cluster's
// own pki root CA. No root, no containerd, no sockets.
//
// # Time
//
// Every component runs on one clockwork.FakeClock. A pump advances it by
// one raft tick (Options.Tick, 100ms) each time the cluster has been quiet
// for a moment (no gRPC bytes, no raft entry applied, no container change),
// and at the latest every 20ms of wall time while it is busy: raft
// elections, agent heartbeats, node-down detection, restart delays and
// update delays happen in cluster time, tens of times faster than wall
// time, and slow down when the machine is loaded. Waits (WaitFor, Await,
// Hold, Converge) poll after each step with a bound in cluster time and one
// in wall time (Options.WallLimit); there are no sleeps.
//
// # Faults
//
// Manager.Stop/Start/Restart, Cluster.KillLeader, Agent.Stop/Start,
// Cluster.Isolate/Cut/Heal (raft links and gRPC links together; a cut
// closes the open connections), and fakeexec rules (Cluster.Rules) for
// tasks that fail, exit or turn unhealthy.
//
// # Determinism
//
// Node IDs, the cluster ID and names come from Options.Seed, and cluster
// time moves only through the pump. Runs are not bit-for-bit repeatable:
// goroutine scheduling, gRPC, etcd raft's randomized election timeouts
// (its own global source), object IDs (crypto/rand) and the pump's
// quiet-detection (wall time) differ between runs. Tests assert outcomes,
// not traces.
//
// # Scale
//
// An agent costs its goroutines (session, heartbeat, status sender, one
// runner per task), one gRPC connection and a fakeexec.Executor with no
// goroutine of its own: thousands fit in one process.
//
// # Concurrency
//
// A Cluster's methods may be called from the test goroutine and from
// goroutines it starts; each node's Start and Stop must not race with
// each other. Every goroutine the cluster starts ends in Close, which New
// registers with t.Cleanup.
package testcluster
