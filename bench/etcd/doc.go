// Package etcd benchmarks etcd as the peer of shoal's raft store: three etcd
// members on loopback, each with its own data directory on the disk of the
// test's temporary directory (where raftstore's BenchmarkReplicatedWrites
// keeps its raft logs), driven through etcd's Go client connected to the
// leader only, with the cases and metrics of BenchmarkReplicatedWrites, so
// scripts/bench-etcd.sh can print the two side by side. It is a module of
// its own so that shoal's go.mod never requires etcd's client.
//
// It has no code outside its benchmark; see bench_test.go for what each
// timer includes.
package etcd
