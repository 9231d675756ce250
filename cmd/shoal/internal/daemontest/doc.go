// Package daemontest runs the control plane of one shoal manager inside a
// test process, for the CLI's tests: the real Control API
// (manager/controlapi) and log broker (manager/logbroker) on a store
// without raft, served over gRPC on a unix socket that the CLI dials as it
// dials shoald. Nothing of the Control API is re-implemented here: what the
// CLI is told (validation errors, name and prefix lookup, conflicts,
// counts, paging) is what a manager says.
//
// What a test stands in for is the rest of the system: LoadCluster and
// Edit write the state the orchestrator, scheduler and workers would have
// written (as a snapshot would: versions and times as given), Before hooks
// change it between the CLI's polls, log agents play the workers' side of
// `service logs`, Members is the raft membership, and the node's own calls
// (Info, Init, Join, Leave, Unlock) answer from fields. The node's
// Registry service is the real one (internal/registry) on an in-memory
// registry that stands behind every registry host: PushImage puts images
// there, LoadCluster pushes FixtureImages. Errors and
// ErrorsOnce inject the failures of a network or a racing writer.
//
// Deterministic by construction: the managers' clock is fake (at Now), and
// new objects get IDs NewID(1), NewID(2), ... in creation order. Join
// tokens and unlock keys stay random (they come from crypto/rand in pki);
// golden files hide them.
//
// Daemon is safe for concurrent use; its exported fields are guarded by
// Mu while it serves. Start ties its goroutines (gRPC server, broker term,
// log agents) to the test and stops them in t.Cleanup.
package daemontest
