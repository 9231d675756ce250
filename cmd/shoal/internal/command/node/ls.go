package node

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	api "github.com/shoal-project/shoal/proto"
)

func newListCommand(cli *command.Cli) *cobra.Command {
	return command.NewListCommand("List nodes in the swarm", "Only display IDs", "Filter output based on conditions provided",
		func(cmd *cobra.Command, o *command.ListOptions) error { return runList(cmd, cli, o) })
}

func nodeFilters(f *opts.Filter) (*api.ListFilters, error) {
	if err := f.Validate("id", "label", "node.label", "membership", "name", "role"); err != nil {
		return nil, err
	}
	lf := &api.ListFilters{
		IdPrefixes: f.Get("id"),
		Names:      f.Get("name"),
		Labels:     f.Get("label"),
		NodeLabels: f.Get("node.label"),
	}
	for _, m := range f.Get("membership") {
		switch m {
		case "accepted":
			lf.Memberships = append(lf.Memberships, api.NodeSpec_ACCEPTED)
		case "pending":
			lf.Memberships = append(lf.Memberships, api.NodeSpec_PENDING)
		default:
			return nil, fmt.Errorf("invalid filter 'membership=%s': expected accepted or pending", m)
		}
	}
	for _, r := range f.Get("role") {
		switch r {
		case "manager":
			lf.Roles = append(lf.Roles, api.NodeRole_MANAGER)
		case "worker":
			lf.Roles = append(lf.Roles, api.NodeRole_WORKER)
		default:
			return nil, fmt.Errorf("invalid filter 'role=%s': expected manager or worker", r)
		}
	}
	return lf, nil
}

func runList(cmd *cobra.Command, cli *command.Cli, o *command.ListOptions) error {
	lf, err := nodeFilters(o.Filter)
	if err != nil {
		return err
	}
	format, err := o.Template(formatter.DefaultNodeTable)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	cl, err := cli.Client()
	if err != nil {
		return err
	}
	resp, err := cl.Control.ListNodes(ctx, &api.ListNodesRequest{Filters: lf})
	if err != nil {
		return err
	}
	self := ""
	if info, err := cl.Local.Info(ctx, &api.InfoRequest{}); err == nil {
		self = info.GetNodeId()
	}
	return formatter.Write(cli.Out, format, formatter.NodeHeader, formatter.NodeRows(resp.GetNodes(), self))
}
