// Package testutil holds the helpers every test tier shares: gates that
// skip a test needing root or a running containerd (in the style of
// containerd's pkg/testutil.RequiresRoot), and bounded polling on real time
// (Eventually, Consistently) or on an injected fake clock (EventuallyClock)
// in place of bare sleeps.
//
// The gates skip with the reason, so `make test-unit` runs as an ordinary
// user without containerd. The root tiers (`make test`, `make test-e2e`) set
// SHOAL_TEST_ROOT=1: there a gate that would skip fails the test instead,
// so a broken test machine is never mistaken for a passing suite.
//
// Concurrency: the helpers are called from the test's goroutine (they call
// t.Fatalf); the containerd probe is cached per address and safe for
// parallel tests. No helper starts a goroutine that outlives its call.
package testutil
