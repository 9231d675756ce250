// Package swarmkit benchmarks SwarmKit's scheduler (github.com/moby/swarmkit/v2)
// on the cases of shoal's manager/schedloop BenchmarkSchedLoop, with the same
// names, so scripts/bench-compare.sh can print the two side by side. It is a
// module of its own so that shoal's go.mod never requires SwarmKit.
//
// It has no code outside its benchmark; see bench_test.go for what each
// timer includes.
package swarmkit
