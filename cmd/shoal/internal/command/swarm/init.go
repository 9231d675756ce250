package swarm

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

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
	dataPathAddr    string
	dataPathPort    uint32
	// --external-ca: a Docker flag shoal does not support yet; refused when given.
	externalCA string
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
	addDataPathAddrFlag(flags, &o.dataPathAddr)
	flags.Uint32Var(&o.dataPathPort, flagDataPathPort, 0,
		"Port number to use for data path traffic (1024 - 49151). If no value is set or is set to 0, the default port (4789) is used.")
	// --external-ca gets a clear answer instead of "unknown flag".
	flags.StringVar(&o.externalCA, "external-ca", "", "Specifications of one or more certificate signing endpoints (not supported yet)")
	_ = flags.MarkHidden("external-ca")
	return cmd
}

const (
	flagDataPathAddr = "data-path-addr"
	flagDataPathPort = "data-path-port"
)

// addDataPathAddrFlag defines --data-path-addr, shared by init and join.
func addDataPathAddrFlag(flags *pflag.FlagSet, p *string) {
	flags.StringVar(p, flagDataPathAddr, "", "Address or interface to use for data path traffic (format: <ip|interface>)")
}

// validateDataPathAddr checks --data-path-addr's syntax: an IP address or
// an interface name, without a port (the node resolves an interface).
func validateDataPathAddr(v string) error {
	if v == "" {
		return nil
	}
	if _, err := netip.ParseAddr(v); err == nil {
		return nil
	}
	if strings.ContainsAny(v, ":/ ") || len(v) > 15 {
		return fmt.Errorf("invalid --%s %q: expected an IP address or an interface name (e.g. 192.168.1.10 or eth1), without a port", flagDataPathAddr, v)
	}
	return nil
}

// validateDataPathPort checks --data-path-port as Docker does: 0 (the
// default, 4789) or a port in 1024-49151.
func validateDataPathPort(port uint32) error {
	if port != 0 && (port < 1024 || port > 49151) {
		return fmt.Errorf("invalid --%s %d: it must be in range 1024-49151 (or 0 for the default, 4789)", flagDataPathPort, port)
	}
	return nil
}

func runInit(cmd *cobra.Command, cli *command.Cli, o *initOptions) error {
	if cmd.Flags().Changed("external-ca") {
		return errors.New("--external-ca is not supported by shoal yet")
	}
	if err := o.swarm.validate(); err != nil {
		return err
	}
	if err := validateDataPathAddr(o.dataPathAddr); err != nil {
		return err
	}
	if err := validateDataPathPort(o.dataPathPort); err != nil {
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
	spec.DataPathPort = o.dataPathPort
	req := &api.InitRequest{
		ListenAddr:      listen,
		AdvertiseAddr:   o.advertiseAddr,
		ForceNewCluster: o.forceNewCluster,
		Spec:            spec,
		Availability:    parseAvailability(o.availability.Value),
		DataPathAddr:    o.dataPathAddr,
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
	fmt.Fprint(out, "To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the instructions.\n")
	if o.swarm.autolock {
		printUnlockCommand(out, resp.GetUnlockKey())
	}
	return nil
}
