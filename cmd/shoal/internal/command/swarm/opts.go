package swarm

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	api "github.com/shoal-project/shoal/proto"
)

// Cluster tunables shared by `swarm init` and `swarm update`, with Docker's
// flag names and defaults.
const (
	flagTaskHistoryLimit    = "task-history-limit"
	flagDispatcherHeartbeat = "dispatcher-heartbeat"
	flagCertExpiry          = "cert-expiry"
	flagSnapshotInterval    = "snapshot-interval"
	flagMaxSnapshots        = "max-snapshots"
	flagAutolock            = "autolock"
	flagDefaultAddrPool     = "default-addr-pool"
	flagSubnetSize          = "default-addr-pool-mask-length"
)

type swarmOptions struct {
	taskHistoryLimit    int64
	dispatcherHeartbeat opts.Duration
	nodeCertExpiry      opts.Duration
	snapshotInterval    uint64
	maxSnapshots        uint64
	autolock            bool
	addrPools           *opts.ListOpts
	subnetSize          uint32
}

func validateCIDR(v string) (string, error) {
	if _, _, err := net.ParseCIDR(v); err != nil {
		return "", fmt.Errorf("invalid CIDR %q: expected an address pool such as 10.0.0.0/8", v)
	}
	return v, nil
}

func addSwarmFlags(flags *pflag.FlagSet, o *swarmOptions, withPools bool) {
	o.dispatcherHeartbeat = opts.Duration(5 * time.Second)
	o.nodeCertExpiry = opts.Duration(90 * 24 * time.Hour)
	o.addrPools = opts.NewListOpts(validateCIDR)
	flags.Int64Var(&o.taskHistoryLimit, flagTaskHistoryLimit, 5, "Task history retention limit")
	flags.Var(&o.dispatcherHeartbeat, flagDispatcherHeartbeat, "Dispatcher heartbeat period (ns|us|ms|s|m|h)")
	flags.Var(&o.nodeCertExpiry, flagCertExpiry, "Validity period for node certificates (ns|us|ms|s|m|h)")
	flags.Uint64Var(&o.snapshotInterval, flagSnapshotInterval, 10000, "Number of log entries between Raft snapshots")
	flags.Uint64Var(&o.maxSnapshots, flagMaxSnapshots, 0, "Number of additional Raft snapshots to retain")
	flags.BoolVar(&o.autolock, flagAutolock, false, "Enable manager autolocking (requiring an unlock key to start a stopped manager)")
	if withPools {
		flags.Var(o.addrPools, flagDefaultAddrPool, "default address pool in CIDR format (default 10.0.0.0/8)")
		flags.Uint32Var(&o.subnetSize, flagSubnetSize, 24, "default address pool subnet mask length")
	}
}

// validate checks values the flag types cannot.
func (o *swarmOptions) validate() error {
	if o.taskHistoryLimit < 0 {
		return fmt.Errorf("invalid --%s %d: must be 0 or more", flagTaskHistoryLimit, o.taskHistoryLimit)
	}
	if time.Duration(o.nodeCertExpiry) < time.Hour {
		return fmt.Errorf("invalid --%s %s: node certificates must be valid for at least 1h", flagCertExpiry, time.Duration(o.nodeCertExpiry))
	}
	if time.Duration(o.nodeCertExpiry) > api.MaxNodeCertExpiry {
		return fmt.Errorf("invalid --%s %s: it is too large: the maximum is %v", flagCertExpiry, time.Duration(o.nodeCertExpiry), api.MaxNodeCertExpiry)
	}
	if time.Duration(o.dispatcherHeartbeat) <= 0 {
		return fmt.Errorf("invalid --%s: the heartbeat period must be positive", flagDispatcherHeartbeat)
	}
	if time.Duration(o.dispatcherHeartbeat) > api.MaxHeartbeatPeriod {
		return fmt.Errorf("invalid --%s %s: it is too large: the maximum is %v", flagDispatcherHeartbeat, time.Duration(o.dispatcherHeartbeat), api.MaxHeartbeatPeriod)
	}
	if o.subnetSize > 32 {
		return fmt.Errorf("invalid --%s %d: must be between 0 and 32", flagSubnetSize, o.subnetSize)
	}
	if o.addrPools != nil {
		for _, pool := range o.addrPools.GetAll() {
			p, err := netip.ParsePrefix(pool)
			if err != nil {
				continue // the flag's own check reported it
			}
			if !p.Addr().Is4() {
				return fmt.Errorf("invalid --%s %s: overlay address pools must be IPv4", flagDefaultAddrPool, pool)
			}
			if int(o.subnetSize) < p.Bits() {
				return fmt.Errorf("invalid --%s %d: networks of /%d do not fit in the address pool %s; use a mask length of at least %d",
					flagSubnetSize, o.subnetSize, o.subnetSize, pool, p.Bits())
			}
		}
	}
	return nil
}

// mergeSpec writes the tunables into spec: all of them for init (all is
// true), only those given on the command line for update.
func (o *swarmOptions) mergeSpec(spec *api.ClusterSpec, flags *pflag.FlagSet, all bool) {
	set := func(name string) bool { return all || flags.Changed(name) }
	if set(flagTaskHistoryLimit) {
		ensure(&spec.Orchestration).TaskHistoryRetentionLimit = o.taskHistoryLimit
	}
	if set(flagDispatcherHeartbeat) {
		ensure(&spec.Dispatcher).HeartbeatPeriod = durationpb.New(time.Duration(o.dispatcherHeartbeat))
	}
	if set(flagCertExpiry) {
		ensure(&spec.CaConfig).NodeCertExpiry = durationpb.New(time.Duration(o.nodeCertExpiry))
	}
	if set(flagSnapshotInterval) {
		ensure(&spec.Raft).SnapshotInterval = o.snapshotInterval
	}
	if set(flagMaxSnapshots) {
		ensure(&spec.Raft).KeepOldSnapshots = o.maxSnapshots
	}
	if set(flagAutolock) {
		ensure(&spec.Encryption).AutoLockManagers = o.autolock
	}
	if flags.Lookup(flagDefaultAddrPool) != nil {
		if flags.Changed(flagDefaultAddrPool) {
			spec.DefaultAddressPool = o.addrPools.GetAll()
		}
		if set(flagSubnetSize) {
			spec.SubnetSize = o.subnetSize
		}
	}
}

// ensure allocates *p when it is nil and returns it.
func ensure[T any](p **T) *T {
	if *p == nil {
		*p = new(T)
	}
	return *p
}

func parseAvailability(s string) api.Availability {
	switch s {
	case "pause":
		return api.Availability_PAUSE
	case "drain":
		return api.Availability_DRAIN
	}
	return api.Availability_ACTIVE
}
