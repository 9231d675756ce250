// Package remotes is how an agent chooses the manager for its next
// session: at random by weight, a manager's weight halved for each failure
// since its last successful session (never dropped: it may be the only one
// that comes back), leaving out the one that just failed. The worker's
// agent uses it, and so does the scale harness's simulated node
// (internal/simagent), so that a simulated fleet spreads its reconnects
// over the managers as real agents do: one that rotated through them in
// turn kept sending a third of its attempts to a manager that had just
// restarted, whose TLS handshakes then timed out by the hundred thousand.
//
// Remotes is safe for concurrent use; its choices are reproducible from
// the seed (SeedFor derives one from a node ID).
package remotes
