// Package testcluster runs a whole shoal cluster in one process, for the
// harness tier of tests (DESIGN.md, testing level 2): N managers
// (manager.Manager, each a raft member on a raftstore.MemNetwork and a gRPC
// server on an in-memory network of pipes, pipe.go) and M agents (the real
// worker.Agent with a fakeexec.Executor) that speak the real dispatcher
// protocol to the managers over mTLS with certificates from the cluster's
// own pki root CA. No root, no containerd, no sockets.
//
// # Time
//
// Every component (raft ticks, dispatcher, control loops, agents, fake
// executors) runs on one clockwork.FakeClock. A pump advances it by one
// raft tick (Options.Tick, 100ms) each time the cluster is quiet: no gRPC
// bytes, no raft entry applied, no container change, and no runnable
// goroutine (runtime/metrics) for two polls; while it stays busy, at most
// one step per 100ms of wall time. Elections, heartbeats, node-down
// detection, restart delays and update delays thus happen in cluster time,
// tens of times faster than wall time when idle and slowed down when the
// machine is loaded, so that load does not fire timeouts. Waits (WaitFor,
// Await, Hold, Converge) poll after each step with a bound in cluster time
// and one in wall time (Options.WallLimit); there are no sleeps.
// Options.WallClock runs the cluster on the real clock instead, for tests
// that measure wall time (manager's scale tests). Still on wall time:
// gRPC deadlines, keepalives and reconnect backoff, context timeouts of
// store writes, and the MemNetwork's reachability window.
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
// runner per task), one gRPC connection (two pipes that hold only the
// bytes in flight, up to 32 KiB each way) and a
// fakeexec.Executor with no goroutine of its own; AddAgents records nodes
// in batches. TestManyAgents runs 100 agents in the tier (300 in about
// 45 s of wall time on two loaded cores). Beyond that, the dispatcher's
// per-session raft write and the fake clock's sorted timer list are the
// next costs to look at. For thousands of nodes, AddSimNodes runs
// simulated ones (internal/simagent: the real dispatcher protocol, no
// containers, two goroutines each) on the wall clock; test/scale uses
// them. AddSimNodesProcess runs such a fleet in child processes of its own
// (the test binary started again; its TestMain calls
// RunFleetProcessIfAsked; as many as let each node keep a connection per
// manager within a process's open-file limit, FleetProcessOptions.Processes), whose nodes connect over TCP to the ports each
// manager then also serves on 127.0.0.1 (Options.Loopback): the managers no
// longer share a Go scheduler with the fleet's goroutines, and the fleet's
// CPU and memory are its process's (FleetProcess.Usage). Its stdin carries
// the nodes' identities; its end stops the child, also when the test
// process dies. The goroutines a manager's start creates carry the pprof
// label LabelKey=<manager name> (and an in-process fleet's,
// LabelKey=fleet), so that a CPU profile of the one process splits by
// manager.
//
// # Managers in processes of their own
//
// ProcCluster (NewProc) is the other shape, for test/scale: each manager
// runs in a child process (the test binary again; TestMain calls
// RunFleetProcessIfAsked), with its own Go runtime and garbage collector
// as a real shoald, raft over gRPC on loopback TCP, and mTLS from the
// harness's CA. A crash is SIGKILL (ProcManager.Kill), a restart replays
// the raft log. The harness writes through the Control API and reads each
// manager's state through its probe, a loopback HTTP server in the child
// (ProcManager.Status; CountTasks, RunningTasks and NotReady count on the
// side of a caught-up follower, so a million tasks never cross a pipe and
// the harness's reads do not load the leader), which also serves
// the child's Go profiles. ProcManager.Usage reads its CPU and RSS from
// /proc. Only simulated nodes (AddSimNodesProcess) join it.
//
// # Concurrency
//
// A Cluster's methods may be called from the test goroutine and from
// goroutines it starts; each node's Start and Stop must not race with
// each other. Every goroutine the cluster starts ends in Close, which New
// registers with t.Cleanup.
package testcluster
