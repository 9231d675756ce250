// Package network holds `shoal network create|ls|inspect|rm|prune`,
// Docker's commands for swarm-scoped overlay networks (shoal has no other
// kind: the driver is always overlay and the scope swarm).
package network

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	api "github.com/shoal-project/shoal/proto"
)

// NewCommand returns `shoal network`.
func NewCommand(cli *command.Cli) *cobra.Command {
	return command.NewGroup("network", "Manage networks",
		newCreateCommand(cli), newListCommand(cli), newInspectCommand(cli), newRemoveCommand(cli), newPruneCommand(cli))
}

type createOptions struct {
	driver     string
	attachable bool
	ingress    bool
	internal   bool
	ipv6       bool
	scope      string
	subnets    []string
	gateways   []string
	ipRanges   []string
	labels     *opts.ListOpts
	options    *opts.ListOpts
}

func newCreateCommand(cli *command.Cli) *cobra.Command {
	o := &createOptions{labels: opts.NewListOpts(opts.ValidateLabel), options: opts.NewListOpts(opts.ValidateLabel)}
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create a network",
		Long: "Create a network\n\n" +
			"shoal networks are overlay networks spanning the swarm (-d overlay, the\n" +
			"default and only driver). Without --subnet the network gets a subnet from\n" +
			"the swarm's default address pool. --opt com.docker.network.driver.mtu=N sets\n" +
			"the MTU (default: the node's underlay MTU minus 50). --opt encrypted is\n" +
			"refused by the swarm: encryption is not built yet.",
		Args: command.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := o.spec(args[0])
			if err != nil {
				return err
			}
			c, err := cli.Control()
			if err != nil {
				return err
			}
			resp, err := c.CreateNetwork(cmd.Context(), &api.CreateNetworkRequest{Spec: spec})
			if err != nil {
				return err
			}
			fmt.Fprintln(cli.Out, resp.GetNetwork().GetId())
			return nil
		},
	}
	flags := cmd.Flags()
	flags.StringVarP(&o.driver, "driver", "d", "overlay", "Driver to manage the Network")
	flags.BoolVar(&o.attachable, "attachable", false, "Enable manual container attachment")
	flags.BoolVar(&o.ingress, "ingress", false, "Create swarm routing-mesh network")
	flags.BoolVar(&o.internal, "internal", false, "Restrict external access to the network")
	flags.BoolVar(&o.ipv6, "ipv6", false, "Enable or disable IPv6 networking")
	flags.StringVar(&o.scope, "scope", "", `Control the network's scope (only "swarm")`)
	flags.StringSliceVar(&o.subnets, "subnet", nil, "Subnet in CIDR format that represents a network segment")
	flags.StringSliceVar(&o.gateways, "gateway", nil, "IPv4 or IPv6 Gateway for the master subnet")
	flags.StringSliceVar(&o.ipRanges, "ip-range", nil, "Allocate container ip from a sub-range")
	flags.Var(o.labels, "label", "Set metadata on a network")
	flags.VarP(o.options, "opt", "o", "Set driver specific options")
	return cmd
}

// spec builds the network spec, checking what the daemon would refuse.
func (o *createOptions) spec(name string) (*api.NetworkSpec, error) {
	if o.driver != "overlay" {
		return nil, fmt.Errorf("network driver %q is not supported: shoal networks use the overlay driver (-d overlay)", o.driver)
	}
	if o.scope != "" && o.scope != "swarm" {
		return nil, fmt.Errorf("invalid scope %q: shoal networks are swarm-scoped", o.scope)
	}
	if o.ingress && o.attachable {
		return nil, errors.New("ingress network cannot be attachable")
	}
	if o.ingress && o.internal {
		return nil, errors.New("ingress network cannot be internal")
	}
	spec := &api.NetworkSpec{
		Annotations: &api.Annotations{Name: name},
		Driver:      &api.Driver{Name: "overlay"},
		Ipv6:        o.ipv6,
		Internal:    o.internal,
		Attachable:  o.attachable,
		Ingress:     o.ingress,
	}
	spec.Annotations.Labels = opts.KVMap(o.labels.GetAll())
	for k, v := range opts.KVMap(o.options.GetAll()) {
		if k == "encrypted" {
			spec.Encrypted = true
			continue
		}
		if k == optMTU {
			if err := validateMTU(v); err != nil {
				return nil, err
			}
		}
		if spec.Driver.Options == nil {
			spec.Driver.Options = map[string]string{}
		}
		spec.Driver.Options[k] = v
	}
	ipam, err := ipamConfigs(o.subnets, o.gateways, o.ipRanges)
	if err != nil {
		return nil, err
	}
	spec.Ipam = ipam
	return spec, nil
}

// ipamConfigs pairs each gateway and ip-range with the subnet holding it,
// as Docker does; a subnet gets at most one of each.
func ipamConfigs(subnets, gateways, ranges []string) ([]*api.IPAMConfig, error) {
	if len(subnets) < len(gateways) || len(subnets) < len(ranges) {
		return nil, errors.New("every ip-range or gateway must have a corresponding subnet")
	}
	prefixes := make([]netip.Prefix, len(subnets))
	out := make([]*api.IPAMConfig, len(subnets))
	for i, s := range subnets {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("invalid subnet %s: it must be in CIDR format, e.g. 10.10.0.0/24", s)
		}
		for j := 0; j < i; j++ {
			if prefixes[j].Overlaps(p) {
				return nil, fmt.Errorf("subnets %s and %s overlap", subnets[j], s)
			}
		}
		prefixes[i] = p
		out[i] = &api.IPAMConfig{Subnet: s}
	}
	for _, r := range ranges {
		rp, err := netip.ParsePrefix(r)
		if err != nil {
			return nil, fmt.Errorf("invalid ip-range %s: it must be in CIDR format", r)
		}
		i := holder(prefixes, rp.Addr())
		if i < 0 || rp.Bits() < prefixes[i].Bits() {
			return nil, fmt.Errorf("no matching subnet for range %s", r)
		}
		if out[i].Range != "" {
			return nil, fmt.Errorf("cannot configure multiple ranges (%s, %s) on the same subnet (%s)", out[i].Range, r, subnets[i])
		}
		out[i].Range = r
	}
	for _, g := range gateways {
		a, err := netip.ParseAddr(strings.TrimSpace(g))
		if err != nil {
			return nil, fmt.Errorf("invalid gateway %s: it must be an IP address", g)
		}
		i := holder(prefixes, a)
		if i < 0 {
			return nil, fmt.Errorf("no matching subnet for gateway %s", g)
		}
		if out[i].Gateway != "" {
			return nil, fmt.Errorf("cannot configure multiple gateways (%s, %s) for the same subnet (%s)", out[i].Gateway, g, subnets[i])
		}
		out[i].Gateway = g
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func holder(prefixes []netip.Prefix, a netip.Addr) int {
	for i, p := range prefixes {
		if p.Contains(a) {
			return i
		}
	}
	return -1
}

// validateMTU checks --opt com.docker.network.driver.mtu's value: a whole
// number of bytes an IPv4 link can carry (68 to 65535).
func validateMTU(v string) error {
	mtu, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || mtu < 68 || mtu > 65535 {
		return fmt.Errorf("invalid --opt %s=%s: the MTU must be a number of bytes from 68 to 65535, e.g. %s=1400", optMTU, v, optMTU)
	}
	return nil
}
