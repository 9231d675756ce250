package network

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	api "github.com/shoal-project/shoal/proto"
)

const defaultNetworkTable = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"

var networkHeader = formatter.Header{
	"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
	"IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "Attachable": "ATTACHABLE", "Ingress": "INGRESS",
}

// networkRow is one line of `network ls`.
type networkRow struct {
	n     *api.Network
	trunc bool
}

func (r *networkRow) ID() string {
	if r.trunc {
		return formatter.TruncateID(r.n.GetId())
	}
	return r.n.GetId()
}
func (r *networkRow) Name() string       { return r.n.GetSpec().GetAnnotations().GetName() }
func (r *networkRow) Driver() string     { return driverName(r.n) }
func (r *networkRow) Scope() string      { return "swarm" }
func (r *networkRow) IPv6() string       { return fmt.Sprint(r.n.GetSpec().GetIpv6()) }
func (r *networkRow) Internal() string   { return fmt.Sprint(r.n.GetSpec().GetInternal()) }
func (r *networkRow) Attachable() string { return fmt.Sprint(r.n.GetSpec().GetAttachable()) }
func (r *networkRow) Ingress() string    { return fmt.Sprint(r.n.GetSpec().GetIngress()) }
func (r *networkRow) Labels() string {
	return formatter.JoinLabels(r.n.GetSpec().GetAnnotations().GetLabels())
}

// MarshalJSON prints every column, for --format json.
func (r *networkRow) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"ID": r.ID(), "Name": r.Name(), "Driver": r.Driver(), "Scope": r.Scope(),
		"IPv6": r.IPv6(), "Internal": r.Internal(), "Attachable": r.Attachable(), "Ingress": r.Ingress(), "Labels": r.Labels()})
}

func driverName(n *api.Network) string {
	if d := n.GetSpec().GetDriver().GetName(); d != "" {
		return d
	}
	return "overlay"
}

func newListCommand(cli *command.Cli) *cobra.Command {
	var noTrunc bool
	cmd := command.NewListCommand("List networks", "Only display network IDs", "Provide filter values (e.g. \"driver=overlay\")",
		func(cmd *cobra.Command, o *command.ListOptions) error {
			if err := o.Filter.Validate("dangling", "driver", "id", "label", "name", "scope", "type"); err != nil {
				return err
			}
			dangling, err := danglingFilter(o.Filter.Get("dangling"))
			if err != nil {
				return err
			}
			f, err := o.Template(defaultNetworkTable)
			if err != nil {
				return err
			}
			c, err := cli.Control()
			if err != nil {
				return err
			}
			lf := &api.ListFilters{IdPrefixes: o.Filter.Get("id"), Labels: o.Filter.Get("label")}
			resp, err := c.ListNetworks(cmd.Context(), &api.ListNetworksRequest{Filters: lf})
			if err != nil {
				return err
			}
			nets := resp.GetNetworks()
			if dangling != nil {
				used, err := usedNetworks(cmd.Context(), c)
				if err != nil {
					return err
				}
				nets = slices.DeleteFunc(slices.Clone(nets), func(n *api.Network) bool {
					return used(n) == *dangling
				})
			}
			formatter.SortNatural(nets, func(n *api.Network) string { return n.GetSpec().GetAnnotations().GetName() })
			var rows []any
			for _, n := range nets {
				if matches(n, o.Filter) {
					rows = append(rows, &networkRow{n: n, trunc: !noTrunc})
				}
			}
			return formatter.Write(cli.Out, f, networkHeader, rows)
		})
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "Do not truncate the output")
	return cmd
}

// danglingFilter reads -f dangling=true|false (Docker also takes 1 and 0):
// nil when not given.
func danglingFilter(vals []string) (*bool, error) {
	var out *bool
	for _, v := range vals {
		var b bool
		switch strings.ToLower(v) {
		case "true", "1":
			b = true
		case "false", "0":
		default:
			return nil, fmt.Errorf("invalid filter 'dangling=%s': use dangling=true or dangling=false", v)
		}
		if out != nil && *out != b {
			return nil, errors.New("invalid filter: dangling=true and dangling=false together match nothing; give one")
		}
		out = &b
	}
	return out, nil
}

// usedNetworks reports whether a service uses a network (its spec names
// it, by ID or name). The ingress network always counts as used, as
// Docker's built-in networks do.
func usedNetworks(ctx context.Context, c api.ControlClient) (func(*api.Network) bool, error) {
	svcs, err := c.ListServices(ctx, &api.ListServicesRequest{})
	if err != nil {
		return nil, err
	}
	targets := map[string]bool{}
	for _, s := range svcs.GetServices() {
		for _, a := range s.GetSpec().GetTask().GetNetworks() {
			targets[a.GetTarget()] = true
		}
	}
	return func(n *api.Network) bool {
		return n.GetSpec().GetIngress() || targets[n.GetId()] || targets[n.GetSpec().GetAnnotations().GetName()]
	}, nil
}

// matches applies `network ls` filters as Docker does: name matches a part
// of the name, id a prefix, type custom (every shoal network is).
func matches(n *api.Network, f *opts.Filter) bool {
	name := n.GetSpec().GetAnnotations().GetName()
	anyOf := func(key string, ok func(string) bool) bool {
		vals := f.Get(key)
		if len(vals) == 0 {
			return true
		}
		for _, v := range vals {
			if ok(v) {
				return true
			}
		}
		return false
	}
	return anyOf("name", func(v string) bool { return strings.Contains(name, v) }) &&
		anyOf("id", func(v string) bool { return strings.HasPrefix(n.GetId(), v) }) &&
		anyOf("driver", func(v string) bool { return v == driverName(n) }) &&
		anyOf("scope", func(v string) bool { return v == "swarm" }) &&
		anyOf("type", func(v string) bool { return v == "custom" }) &&
		opts.MatchLabels(n.GetSpec().GetAnnotations().GetLabels(), f.Get("label"))
}

func newRemoveCommand(cli *command.Cli) *cobra.Command {
	return command.NewRemoveCommand(cli, "rm NETWORK [NETWORK...]", "Remove one or more networks",
		func(ctx context.Context, c api.ControlClient, ref string) error {
			_, err := c.RemoveNetwork(ctx, &api.RemoveNetworkRequest{NetworkId: ref})
			return err
		})
}

const pruneWarning = `WARNING! This will remove all custom networks not used by at least one service.
Are you sure you want to continue? [y/N] `

func newPruneCommand(cli *command.Cli) *cobra.Command {
	var (
		force  bool
		filter = opts.NewFilter()
	)
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all unused networks",
		Long: "Remove all unused networks\n\n" +
			"A network is unused when no service is attached to it. The ingress network\n" +
			"is never removed.",
		Args: command.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := filter.Validate("label"); err != nil {
				return err
			}
			if !force && !confirm(cli) {
				return nil
			}
			c, err := cli.Control()
			if err != nil {
				return err
			}
			deleted, err := prune(cmd.Context(), cli, c, filter.Get("label"))
			if len(deleted) > 0 {
				fmt.Fprintf(cli.Out, "Deleted Networks:\n%s\n\n", strings.Join(deleted, "\n"))
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().Var(filter, "filter", `Provide filter values (e.g. "label=<key>=<value>")`)
	return cmd
}

// confirm asks Docker's question on stdout, as Docker does,
// and reads the answer from stdin.
func confirm(cli *command.Cli) bool {
	fmt.Fprint(cli.Out, pruneWarning)
	line, _ := bufio.NewReader(cli.In).ReadString('\n')
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes"
}

// prune removes the networks no service uses, in name order, and returns
// the names removed.
func prune(ctx context.Context, cli *command.Cli, c api.ControlClient, labels []string) ([]string, error) {
	nets, err := c.ListNetworks(ctx, &api.ListNetworksRequest{Filters: &api.ListFilters{Labels: labels}})
	if err != nil {
		return nil, err
	}
	used, err := usedNetworks(ctx, c)
	if err != nil {
		return nil, err
	}
	list := nets.GetNetworks()
	sort.Slice(list, func(i, j int) bool {
		return list[i].GetSpec().GetAnnotations().GetName() < list[j].GetSpec().GetAnnotations().GetName()
	})
	var deleted, errs []string
	for _, n := range list {
		name := n.GetSpec().GetAnnotations().GetName()
		if used(n) || !opts.MatchLabels(n.GetSpec().GetAnnotations().GetLabels(), labels) {
			continue
		}
		if _, err := c.RemoveNetwork(ctx, &api.RemoveNetworkRequest{NetworkId: n.GetId()}); err != nil {
			if command.IsConnectError(err) {
				return deleted, err
			}
			errs = append(errs, err.Error())
			continue
		}
		deleted = append(deleted, name)
	}
	return deleted, command.JoinErrors(errs)
}
