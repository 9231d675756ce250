package raftstore

// How control loops cut many writes into transactions (with
// internal/batch.Cut): large enough that a burst of thousands of changes
// costs a few raft entries, not thousands; small enough to stay under
// MaxTransactionBytes, and to make at most BatchItems watch events at once
// (a watcher's buffer holds DefaultWatchBuffer).
const (
	BatchItems = 1000
	BatchBytes = MaxTransactionBytes - 64<<10
)
