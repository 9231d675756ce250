// Package cluster holds the multi-node acceptance tests of shoal: real
// shoald processes, one per lab host (a network namespace, see test/lab),
// real containerd, real mTLS between the hosts. Each test builds its own
// lab, forms a swarm with `shoal swarm init` and `shoal swarm join`, injects
// a fault (kill -9, partition, rogue clients, drain) and checks what a user
// would check with the CLI, plus containerd's own view of the containers.
//
// The tests need root (the lab skips otherwise) and a running containerd.
// Run them one at a time:
//
//	go test -count=1 -timeout 20m ./test/cluster/
//
// Failover measurements (leader kill, worker loss) are logged and written to
// $SHOAL_BENCH_DIR (default: $TMPDIR/shoal-bench) as <Test>.txt.
//
// The package has no non-test code but this comment.
package cluster
