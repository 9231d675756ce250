// Package scale holds the scale scenario of issue 13 (its tests only): an
// in-process cluster of three managers (internal/testcluster, on the wall
// clock) and N simulated nodes (internal/simagent) speaking the real
// dispatcher protocol, through which one service of TASKS replicas is
// created (after an idle phase that measures heartbeats alone), rolled to
// a new spec while the leader is killed (SHOAL_SCALE_KILLS times, default
// 1: each failover timed from the kill's start until a surviving manager
// accepts a write, with p50/p99 over several; the most nodes seen not READY
// at once, since a node marked down has its tasks rescheduled), moved off
// 10 % of the nodes by a drain, and removed. Each phase is bounded in wall
// time and reports its wall time, tasks/s, raft entries/s, process CPU,
// heap and RSS.
//
//	make scale                             # 1,000 nodes x 100,000 tasks
//	SHOAL_SCALE=1 SHOAL_SCALE_NODES=200 SHOAL_SCALE_TASKS=5000 \
//	    go test -run 'TestScale$' -v -timeout 60m ./test/scale/
//
// TestScaleShort runs a small version (200 x 5,000; 50 x 1,000 under the
// race detector) in `make test`; it asserts outcomes, never speed. The
// tests start every goroutine through the cluster and its fleet, which
// stop with the test.
package scale
