package swarm

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	api "github.com/shoal-project/shoal/proto"
)

type initOptions struct {
	swarm           swarmOptions
	listenAddr      string
	advertiseAddr   string
	forceNewCluster bool
	availability    *opts.Enum
	// Docker flags shoal does not support yet; refused when given.
	dataPathAddr string
	dataPathPort uint32
	externalCA   string
}

func newInitCommand(cli *command.Cli) *cobra.Command {
	o := &initOptions{availability: opts.NewEnum("active", "active", "pause", "drain")}
	cmd := &cobra.Command{
		Use:   "init [OPTIONS]",
		Short: "Initialize a swarm",
		Args:  command.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runInit(cmd, cli, o)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&o.listenAddr, "listen-addr", "0.0.0.0:"+DefaultPort, "Listen address (format: <ip|interface>[:port])")
	flags.StringVar(&o.advertiseAddr, "advertise-addr", "", "Advertised address (format: <ip|interface>[:port])")
	flags.BoolVar(&o.forceNewCluster, "force-new-cluster", false, "Force create a new cluster from current state")
	flags.Var(o.availability, "availability", `Availability of the node ("active", "pause", "drain")`)
	addSwarmFlags(flags, &o.swarm, true)
	addUnsupportedFlags(cmd, &o.dataPathAddr, &o.dataPathPort, &o.externalCA)
	return cmd
}

// addUnsupportedFlags defines Docker's data-path and external CA flags so
// that using them gets a clear answer instead of "unknown flag".
func addUnsupportedFlags(cmd *cobra.Command, dataPathAddr *string, dataPathPort *uint32, externalCA *string) {
	flags := cmd.Flags()
	flags.StringVar(dataPathAddr, "data-path-addr", "", "Address or interface to use for data path traffic (not supported yet)")
	if dataPathPort != nil {
		flags.Uint32Var(dataPathPort, "data-path-port", 0, "Port number to use for data path traffic (not supported yet)")
		_ = flags.MarkHidden("data-path-port")
	}
	if externalCA != nil {
		flags.StringVar(externalCA, "external-ca", "", "Specifications of one or more certificate signing endpoints (not supported yet)")
		_ = flags.MarkHidden("external-ca")
	}
	_ = flags.MarkHidden("data-path-addr")
}

func refuseUnsupported(cmd *cobra.Command) error {
	for _, name := range []string{"data-path-addr", "data-path-port", "external-ca"} {
		if cmd.Flags().Changed(name) {
			return fmt.Errorf("--%s is not supported by shoal yet", name)
		}
	}
	return nil
}

func runInit(cmd *cobra.Command, cli *command.Cli, o *initOptions) error {
	if err := refuseUnsupported(cmd); err != nil {
		return err
	}
	if err := o.swarm.validate(); err != nil {
		return err
	}
	// Without --listen-addr the daemon's own --listen-addr applies.
	listen := ""
	if cmd.Flags().Changed("listen-addr") {
		var err error
		if listen, err = listenAddr(o.listenAddr); err != nil {
			return err
		}
	}
	spec := &api.ClusterSpec{}
	o.swarm.mergeSpec(spec, cmd.Flags(), true)
	req := &api.InitRequest{
		ListenAddr:      listen,
		AdvertiseAddr:   o.advertiseAddr,
		ForceNewCluster: o.forceNewCluster,
		Spec:            spec,
		Availability:    parseAvailability(o.availability.Value),
	}
	cl, err := cli.Client()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	resp, err := cl.Local.Init(ctx, req)
	if err != nil {
		return err
	}
	addr := withPort(resp.GetAdvertiseAddr())
	if addr == "" {
		if info, err := cl.Local.Info(ctx, &api.InfoRequest{}); err == nil {
			addr = managerAddr(info)
		}
	}
	out := cli.Out
	fmt.Fprintf(out, "Swarm initialized: current node (%s) is now a manager.\n\n", resp.GetNodeId())
	printJoinCommand(out, "worker", resp.GetWorkerToken(), addr)
	fmt.Fprint(out, "To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the instructions.\n\n")
	if o.swarm.autolock {
		printUnlockCommand(out, resp.GetUnlockKey())
	}
	return nil
}
