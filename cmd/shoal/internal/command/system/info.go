package system

import (
	"fmt"
	"io"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/version"
)

// NewInfoCommand returns `shoal info`.
func NewInfoCommand(cli *command.Cli) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "info [OPTIONS]",
		Short: "Display system-wide information",
		Args:  command.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runInfo(cmd, cli, format)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format the output of the daemon's Info using a Go template")
	return cmd
}

func runInfo(cmd *cobra.Command, cli *command.Cli, format string) error {
	ctx := cmd.Context()
	cl, err := cli.Client()
	if err != nil {
		return err
	}
	info, infoErr := cl.Local.Info(ctx, &api.InfoRequest{})
	if format != "" {
		if infoErr != nil {
			return infoErr
		}
		return formatter.WriteTemplate(cli.Out, format, []proto.Message{info})
	}
	out := cli.Out
	fmt.Fprintf(out, "Client:\n Version:    %s\n\nServer:\n", version.Version)
	if infoErr != nil {
		return infoErr
	}
	fmt.Fprintf(out, " Server Version: %s\n", info.GetVersion())
	fmt.Fprintf(out, " Hostname: %s\n", info.GetHostname())
	fmt.Fprintf(out, " Data dir: %s\n", info.GetDataDir())
	fmt.Fprintf(out, " Swarm: %s\n", swarmState(info.GetState()))
	switch info.GetState() {
	case api.InfoResponse_INACTIVE, api.InfoResponse_LOCKED:
		return nil
	case api.InfoResponse_ERROR:
		fmt.Fprintf(out, "  Error: %s\n", info.GetError())
		return nil
	}
	fmt.Fprintf(out, "  NodeID: %s\n", info.GetNodeId())
	if info.GetError() != "" {
		fmt.Fprintf(out, "  Error: %s\n", info.GetError())
	}
	fmt.Fprintf(out, "  Is Manager: %t\n", info.GetControlAvailable())
	if f := info.GetRaftDiskFault(); f != "" {
		since := ""
		if t := info.GetRaftDiskFaultSince(); t != nil {
			since = fmt.Sprintf(" (for %s)", humanDuration(time.Since(t.AsTime())))
		}
		fmt.Fprintf(out, "  Raft Log Error: %s%s\n", f, since)
	}
	if info.GetControlAvailable() {
		fmt.Fprintf(out, "  ClusterID: %s\n", info.GetClusterId())
		fmt.Fprintf(out, "  Managers: %d\n", info.GetManagerCount())
		fmt.Fprintf(out, "  Nodes: %d\n", info.GetNodes())
		if resp, err := cl.Control.ListClusters(ctx, &api.ListClustersRequest{}); err == nil && len(resp.GetClusters()) > 0 {
			printClusterInfo(out, resp.GetClusters()[0].GetSpec())
		}
		fmt.Fprintf(out, "  Raft Applied Index: %d\n", info.GetRaftAppliedIndex())
		if info.GetLeaderAddr() != "" {
			fmt.Fprintf(out, "  Leader Address: %s\n", info.GetLeaderAddr())
		}
	}
	fmt.Fprintf(out, "  Node Address: %s\n", info.GetNodeAddr())
	if len(info.GetManagers()) > 0 {
		fmt.Fprintln(out, "  Manager Addresses:")
		for _, m := range info.GetManagers() {
			fmt.Fprintf(out, "   %s\n", m.GetAddr())
		}
	}
	return nil
}

func printClusterInfo(out io.Writer, spec *api.ClusterSpec) {
	if pools := spec.GetDefaultAddressPool(); len(pools) > 0 {
		fmt.Fprintf(out, "  Default Address Pool: %s\n", strings.Join(pools, " "))
	}
	if spec.GetSubnetSize() != 0 {
		fmt.Fprintf(out, "  SubnetSize: %d\n", spec.GetSubnetSize())
	}
	// As Docker: the VXLAN port in force (0 is the default, 4789).
	fmt.Fprintf(out, "  Data Path Port: %d\n", orDefault(spec.GetDataPathPort(), 4789))
	fmt.Fprintln(out, "  Orchestration:")
	fmt.Fprintf(out, "   Task History Retention Limit: %d\n", spec.GetOrchestration().GetTaskHistoryRetentionLimit())
	fmt.Fprintln(out, "  Raft:")
	// A zero is a setting left at its default (swarms created before the
	// defaults were recorded): show the value in force.
	raft := spec.GetRaft()
	fmt.Fprintf(out, "   Snapshot Interval: %d\n", orDefault(raft.GetSnapshotInterval(), api.DefaultSnapshotInterval))
	fmt.Fprintf(out, "   Number of Old Snapshots to Retain: %d\n", raft.GetKeepOldSnapshots())
	fmt.Fprintf(out, "   Heartbeat Tick: %d\n", orDefault(raft.GetHeartbeatTick(), api.DefaultHeartbeatTick))
	fmt.Fprintf(out, "   Election Tick: %d\n", orDefault(raft.GetElectionTick(), api.DefaultElectionTick))
	fmt.Fprintln(out, "  Dispatcher:")
	fmt.Fprintf(out, "   Heartbeat Period: %s\n", humanDuration(spec.GetDispatcher().GetHeartbeatPeriod().AsDuration()))
	fmt.Fprintln(out, "  CA Configuration:")
	fmt.Fprintf(out, "   Expiry Duration: %s\n", humanDuration(api.Dur(spec.GetCaConfig().GetNodeCertExpiry(), api.DefaultNodeCertExpiry)))
	fmt.Fprintf(out, "  Autolock Managers: %t\n", spec.GetEncryption().GetAutoLockManagers())
}

func humanDuration(d time.Duration) string {
	if d == 0 {
		return "0 seconds"
	}
	return strings.ToLower(units.HumanDuration(d))
}

func swarmState(s api.InfoResponse_State) string {
	return strings.ToLower(s.String())
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
