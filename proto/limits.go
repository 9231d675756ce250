package api

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// Limits on what shoal accepts. They are chosen together, so that whatever
// is accepted can be stored, replicated, scheduled, run and listed: nothing
// accepted can later fail because a message or a raft entry is too large.
// The table in docs/limits.md explains each one; change both together.
//
// How they fit, with the 4 MiB message cap of every connection and the
// 1.5 MiB cap of one raft transaction (raftstore.MaxTransactionBytes):
//   - a service is stored with its spec and its previous spec, and each task
//     carries a copy of the task spec: a service write with one task is at
//     most 3 × MaxServiceSpecBytes (768 KiB), well under a transaction, and
//     the orchestrator sizes its batches of task writes by bytes;
//   - one list page is at most MaxListPageBytes (2 MiB), half the message
//     cap, and holds at least one object of any size accepted (a service
//     with both specs, or a config with MaxConfigDataBytes of data);
//   - a config or secret of MaxConfigDataBytes travels to a node in an
//     assignment message of its own when needed.
const (
	// MaxMessageBytes is the gRPC message cap of every shoal connection:
	// the daemon's socket, the managers' API and raft.
	MaxMessageBytes = 4 << 20
	// MaxListPageBytes bounds one page of a List answer.
	MaxListPageBytes = 2 << 20

	// MaxServiceSpecBytes bounds a service spec, encoded.
	MaxServiceSpecBytes = 256 << 10
	// MaxSecretDataBytes and MaxConfigDataBytes bound the data of a secret
	// or a config (Docker's limit for secrets; Docker allows configs twice
	// that, which a list page could not hold with its neighbours).
	MaxSecretDataBytes = 500 << 10
	MaxConfigDataBytes = 500 << 10
	// MaxSecretsPerService and MaxConfigsPerService bound the references
	// of one service.
	MaxSecretsPerService = 100
	MaxConfigsPerService = 100

	// MaxNameLength bounds the name of a service or network (a DNS label);
	// MaxDataNameLength the name of a secret or config (Docker's 64).
	MaxNameLength     = 63
	MaxDataNameLength = 64

	// MaxLabels bounds the labels of one map (service, container, node,
	// network, secret, config); MaxLabelBytes one label, key and value;
	// MaxLabelsBytes all labels of one map.
	MaxLabels      = 1000
	MaxLabelBytes  = 64 << 10
	MaxLabelsBytes = 128 << 10

	// MaxEnv bounds the environment entries of a container and MaxArgs its
	// command and arguments together; MaxArgBytes one entry of either
	// (Linux refuses a longer one at exec: MAX_ARG_STRLEN).
	MaxEnv      = 4096
	MaxArgs     = 4096
	MaxArgBytes = 128<<10 - 1

	// MaxReplicas bounds replicas, job completions and job concurrency.
	MaxReplicas = 1_000_000

	// Durations. A longer value is refused, never silently capped.
	MaxStopGracePeriod = time.Hour
	MaxRestartDelay    = time.Hour
	MaxRestartWindow   = 7 * 24 * time.Hour
	MaxUpdateDelay     = time.Hour
	MaxUpdateMonitor   = time.Hour
	// MaxHealthDuration bounds a health check's interval, timeout, start
	// period and start interval.
	MaxHealthDuration = time.Hour
	// MaxHeartbeatPeriod bounds the dispatcher heartbeat: a node is seen
	// DOWN only after three missed periods.
	MaxHeartbeatPeriod = 5 * time.Minute
	// MaxNodeCertExpiry bounds the lifetime of node certificates.
	MaxNodeCertExpiry = 10 * 365 * 24 * time.Hour

	// MaxEchoBytes is how much of a refused value an error message repeats.
	MaxEchoBytes = 64
)

// FormatBytes words a size for messages: "512 B", "256 KiB", "1.5 MiB",
// with the exact count when the rounded figure hides it: "256 KiB (262145
// bytes)", so that a value just over a limit never reads as the limit.
func FormatBytes(n int64) string {
	unit, name := int64(1), "B"
	switch {
	case n >= 1<<20:
		unit, name = 1<<20, "MiB"
	case n >= 1<<10:
		unit, name = 1<<10, "KiB"
	}
	tenths := (n*10 + unit/2) / unit
	s := fmt.Sprintf("%d", tenths/10)
	if tenths%10 != 0 {
		s += fmt.Sprintf(".%d", tenths%10)
	}
	s += " " + name
	if tenths*unit != n*10 {
		s += fmt.Sprintf(" (%d bytes)", n)
	}
	return s
}

// Echo quotes a user's value for an error message, cut to MaxEchoBytes (on
// a rune boundary) with its full length: "aaaa…"…(100000 bytes)".
func Echo(s string) string {
	if len(s) <= MaxEchoBytes {
		return fmt.Sprintf("%q", s)
	}
	cut := MaxEchoBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q…(%d bytes)", s[:cut], len(s))
}
