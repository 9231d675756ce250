// Package scale holds the scale scenario of issue 13 (its tests only):
// three managers and N simulated nodes (internal/simagent) speaking the
// real dispatcher protocol, on which TASKS tasks are created as one service
// or split evenly among SERVICES services (after an idle phase that
// measures heartbeats alone), rolled to a new spec while the leader is
// killed (SHOAL_SCALE_KILLS times, default 1: each failover timed from the
// kill's start until a surviving manager accepts a write, with p50/p99 over
// several; the most nodes seen not READY at once, since a node marked down
// has its tasks rescheduled), moved off 10 % of the nodes by a drain, and
// removed. Each phase is bounded in wall time and reports its wall time,
// tasks/s, raft entries/s, the managers' CPU, heap and RSS. The create
// ends when every task runs and fails if a node was marked down on the
// way (the managers count them) or a task was replaced.
//
// By default each manager runs in a process of its own
// (testcluster.ProcCluster: the test binary again, raft over gRPC on
// loopback TCP as between shoald processes, a leader kill is SIGKILL), and
// each phase reports every manager's CPU, RSS and Go heap (the leader
// marked); the harness reads counts through the managers' probes and
// writes through the Control API. A count reads every task on a manager's
// side (its CPU is in that manager's), so waits poll about every 10 ms per
// 1,000 tasks (at most every 5 s), and the create's wait by the time its
// progress says is left (pollNext): rarely while much is left, often near
// the end. The test log names each manager's probe,
// whose /debug/pprof/ serves its Go profiles, and /debug/pprof/trace an
// execution trace (curl 'http://PROBE/debug/pprof/trace?seconds=5' > t;
// bench/tracewait says what a function's goroutines waited on; a trace
// slows a loaded manager, so a traced run's counts are not comparable). With
// SHOAL_SCALE_MANAGERS=inline the three share this process
// (testcluster.Cluster): each phase then also reports its CPU split by
// part from a CPU profile of the phase (each manager, the harness, the
// rest), but not memory by manager. The fleet runs in processes of its own
// (testcluster.AddSimNodesProcess: as many as let each node keep a
// connection per manager within a process's open-file limit, two for
// 10,000 nodes where the limit is 20,000), whose CPU and RSS each phase
// reports apart (summed), or, with inline managers, optionally in theirs.
//
// Variables (TestScale runs only with SHOAL_SCALE=1):
//
//	SHOAL_SCALE_NODES          simulated nodes (default 1000)
//	SHOAL_SCALE_TASKS          tasks in all (default 100000; 0: join and idle only)
//	SHOAL_SCALE_SERVICES       services the tasks split among (default 1)
//	SHOAL_SCALE_PHASES         phases after the idle one (default
//	                           create,update,drain,remove; add failover for
//	                           leader kills in the steady swarm)
//	SHOAL_SCALE_STEADY_KILLS   leader kills of the failover phase (default 5;
//	                           it then fails the run if any task that ran
//	                           was moved or stopped)
//	SHOAL_SCALE_RAFT_TICK      the managers' raft tick (default 100ms; the
//	                           election timeout is 30 ticks), as shoald's
//	                           --raft-tick
//	SHOAL_SCALE_MANAGERS       process (default): each manager in a child
//	                           process of its own; inline: the three in
//	                           this process, on in-memory networks
//	SHOAL_SCALE_LOG_DIR        with a process per manager: a directory for
//	                           their logs (INFO and up, <name>.log) and, when
//	                           a wait's state has not moved for 20 s, their
//	                           goroutine dumps (<name>-stall<n>.goroutines.txt)
//	SHOAL_SCALE_RECONNECT_SPREAD  the longest random wait of a simulated
//	                           node before it reconnects after its session
//	                           ended (default 1 s, as the real agent at the
//	                           default heartbeat; negative: none, for A/B)
//	SHOAL_SCALE_ELECTION_HOLD  with a process per manager: how long a
//	                           follower holds a call for the leader during
//	                           an election (default: an election timeout;
//	                           a negative duration: never, for A/B runs)
//	SHOAL_TESTCLUSTER_NO_TICKETS  set: with a process per manager, the
//	                           managers issue no TLS session tickets, so
//	                           that every reconnect is a full handshake
//	                           (for A/B runs of session resumption)
//	SHOAL_SCALE_FLEET          process (default): the simulated nodes in
//	                           child processes of their own, over loopback
//	                           TCP; inline (with inline managers only): in
//	                           this process, on the in-memory network
//	SHOAL_SCALE_FLEET_NICE     the fleet process's nice value (default 0)
//	SHOAL_SCALE_KILLS          leader kills during the roll (default 1)
//	SHOAL_SCALE_KILL_SPACING   tasks updated between kills (default TASKS/(KILLS+3))
//	SHOAL_SCALE_IDLE           the idle phase (default 20s)
//	SHOAL_SCALE_PHASE_LIMIT    wall limit of each phase (default 10m)
//	SHOAL_SCALE_MIN_AVAILABLE  MiB of MemAvailable under which the run fails
//	                           (default 2048; under half of it the process
//	                           exits with the report so far)
//	SHOAL_SCALE_CPUPROFILE     phase:file[,phase:file] CPU profiles to keep
//	                           (with a process per manager, one per manager:
//	                           file.m0, file.m1...)
//	SHOAL_SCALE_CATCHUP_PROFILE file: a CPU profile of each manager restarted
//	                           after a leader kill, from its restart until it
//	                           has caught up (file.m0.1, ...; a process per
//	                           manager), and of the survivors from just
//	                           before the kill until then
//	                           (file.survivor-m1.1, ...)
//	SHOAL_SCALE_HEAPPROFILES   phase:file[,phase:file] with a process per
//	                           manager: each running manager's live heap
//	                           profile (after a collection) at the end of
//	                           the phase, before the next (file.m0, ...)
//	SHOAL_SCALE_HEAPPROFILE    file: the heap profile after the join (inline
//	                           managers)
//	SHOAL_TESTCLUSTER_FLEET_CPUPROFILE file: a CPU profile of each fleet
//	                           process from its start to its end
//	                           (file.<pid>; a fleet process)
//
//	make scale                             # 1,000 nodes x 100,000 tasks
//	make scale SHOAL_SCALE_NODES=10000 SHOAL_SCALE_TASKS=1000000 SHOAL_SCALE_KILLS=5
//	make scale SHOAL_SCALE_NODES=10000 SHOAL_SCALE_TASKS=1000000 SHOAL_SCALE_SERVICES=1000
//
// TestScaleShort runs a small version in `make test`, with inline managers
// (200 nodes x 5,000 tasks as one service, with a steady failover and the
// fleet in a process at nice 5, and as 20 with the fleet inline) and with a
// process per manager (one service, every phase); 50 x 1,000 and 10
// services under the race detector. It asserts outcomes, never speed. The tests start every
// goroutine through the cluster and its fleet, which stop with the test,
// and the memory guard, which stops in the test's cleanup.
package scale
