package raftstore

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"

	api "github.com/shoal-project/shoal/proto"
)

// Config configures a Node. Zero fields take the documented defaults in
// validate; a Config must not change after New.
type Config struct {
	// NodeID is the cluster node ID of this member (the CN of its
	// certificate). Required.
	NodeID string
	// Addr is the address other members reach this one at (host:port).
	Addr string
	// StoragePath is the raft log file. Required.
	StoragePath string

	// Tick is the raft tick. Default 100ms.
	Tick time.Duration
	// ElectionTick is the ticks a follower waits before campaigning. Default
	// 30 (a 3s election timeout, randomized by raft to [3s, 6s); see
	// api.DefaultElectionTick for why).
	ElectionTick int
	// HeartbeatTick is the ticks between leader heartbeats. Default 1.
	HeartbeatTick int
	// SnapshotInterval is the applied entries between snapshots. Default
	// 10,000.
	SnapshotInterval uint64
	// LogEntriesForSlowFollowers is the entries kept before a snapshot's
	// index so that a follower slightly behind can catch up without a
	// snapshot. Default 500.
	LogEntriesForSlowFollowers uint64
	// MaxSizePerMsg caps the entries in one append message. Default 1 MiB.
	MaxSizePerMsg uint64
	// MaxInflightMsgs caps unacknowledged append messages per follower.
	// Default 256.
	MaxInflightMsgs int

	// DiskRetryMin and DiskRetryMax bound the backoff between probes of a
	// disk that failed a raft log write (ENOSPC, EDQUOT, EIO, EROFS): the
	// first probe waits DiskRetryMin, each next one twice as long, at most
	// DiskRetryMax. Defaults 100ms and 2s.
	DiskRetryMin time.Duration
	DiskRetryMax time.Duration
	// DiskProbeBytes is written (and removed) next to the raft log by each
	// probe: the free space a manager needs before it resumes, so it does
	// not resume onto a disk with only a few bytes free. Default 4 MiB (the
	// largest entry, 1.5 MiB, with bbolt's copy-on-write overhead).
	DiskProbeBytes int64

	// Clock drives ticks and disk probes. Default the real clock.
	Clock clockwork.Clock
	// Logger receives the node's and raft's logs. Default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults (NodeID and StoragePath still to fill).
func DefaultConfig() Config {
	c := Config{}
	_ = c.validate()
	return c
}

func (c *Config) validate() error {
	if c.Tick == 0 {
		c.Tick = 100 * time.Millisecond
	}
	if c.ElectionTick == 0 {
		c.ElectionTick = api.DefaultElectionTick
	}
	if c.HeartbeatTick == 0 {
		c.HeartbeatTick = api.DefaultHeartbeatTick
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = api.DefaultSnapshotInterval
	}
	if c.LogEntriesForSlowFollowers == 0 {
		c.LogEntriesForSlowFollowers = 500
	}
	if c.MaxSizePerMsg == 0 {
		c.MaxSizePerMsg = 1 << 20
	}
	if c.MaxInflightMsgs == 0 {
		c.MaxInflightMsgs = 256
	}
	if c.DiskRetryMin == 0 {
		c.DiskRetryMin = 100 * time.Millisecond
	}
	if c.DiskRetryMax == 0 {
		c.DiskRetryMax = 2 * time.Second
	}
	if c.DiskProbeBytes == 0 {
		c.DiskProbeBytes = 4 << 20
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.NodeID == "":
		return errors.New("raftstore: NodeID is required")
	case c.StoragePath == "":
		return errors.New("raftstore: StoragePath is required")
	case c.Tick < time.Millisecond:
		return fmt.Errorf("raftstore: tick %v is below 1ms", c.Tick)
	case c.ElectionTick <= c.HeartbeatTick:
		return fmt.Errorf("raftstore: election tick (%d) must exceed heartbeat tick (%d)", c.ElectionTick, c.HeartbeatTick)
	case c.DiskRetryMin < 0 || c.DiskRetryMax < c.DiskRetryMin:
		return fmt.Errorf("raftstore: disk retry backoff [%v, %v] is not a valid range", c.DiskRetryMin, c.DiskRetryMax)
	case c.DiskRetryMax > 10*time.Minute:
		return fmt.Errorf("raftstore: disk retry backoff maximum %v is over 10m", c.DiskRetryMax)
	case c.DiskProbeBytes < 0 || c.DiskProbeBytes > 1<<30:
		return fmt.Errorf("raftstore: disk probe size %d is outside [0, 1 GiB]", c.DiskProbeBytes)
	case c.MaxSizePerMsg > 3<<20:
		return fmt.Errorf("raftstore: MaxSizePerMsg %d would break the 4 MiB message cap", c.MaxSizePerMsg)
	}
	return nil
}
