package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// errNoChange tells updateNode that the node is already as wanted.
var errNoChange = errors.New("no change")

// updateNode reads the node, lets mutate change a copy of its spec and writes
// it back with the version it read. A conflict (the node changed meanwhile)
// is retried once with a fresh read.
func updateNode(ctx context.Context, cli *command.Cli, c api.ControlClient, ref string, mutate func(*api.Node, *api.NodeSpec) error) error {
	for attempt := 0; ; attempt++ {
		n, err := getNode(ctx, cli, c, ref)
		if err != nil {
			return err
		}
		spec, _ := proto.Clone(n.GetSpec()).(*api.NodeSpec)
		if spec == nil {
			spec = &api.NodeSpec{}
		}
		if err := mutate(n, spec); err != nil {
			return err
		}
		_, err = c.UpdateNode(ctx, &api.UpdateNodeRequest{NodeId: n.GetId(), NodeVersion: n.GetMeta().GetVersion(), Spec: spec})
		if err != nil && attempt == 0 && errors.Is(err, errdefs.ErrConflict) {
			continue
		}
		return err
	}
}

type updateOptions struct {
	availability *opts.Enum
	role         *opts.Enum
	labelAdd     *opts.ListOpts
	labelRm      *opts.ListOpts
}

func newUpdateCommand(cli *command.Cli) *cobra.Command {
	o := &updateOptions{
		availability: opts.NewEnum("", "active", "pause", "drain"),
		role:         opts.NewEnum("", "worker", "manager"),
		labelAdd:     opts.NewListOpts(opts.ValidateLabel),
		labelRm:      opts.NewListOpts(opts.ValidateNotEmpty),
	}
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] NODE",
		Short: "Update a node",
		Args:  command.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUpdate(cmd, cli, o, args[0])
		},
	}
	flags := cmd.Flags()
	flags.Var(o.availability, "availability", `Availability of the node ("active", "pause", "drain")`)
	flags.Var(o.role, "role", `Role of the node ("worker", "manager")`)
	flags.Var(o.labelAdd, "label-add", "Add or update a node label (key=value)")
	flags.Var(o.labelRm, "label-rm", "Remove a node label if exists")
	return cmd
}

func runUpdate(cmd *cobra.Command, cli *command.Cli, o *updateOptions, ref string) error {
	c, err := cli.Control()
	if err != nil {
		return err
	}
	flags := cmd.Flags()
	err = updateNode(cmd.Context(), cli, c, ref, func(_ *api.Node, spec *api.NodeSpec) error {
		if flags.Changed("role") {
			spec.DesiredRole = parseRole(o.role.Value)
		}
		if flags.Changed("availability") {
			spec.Availability = api.Availability(api.Availability_value[upper(o.availability.Value)])
		}
		if spec.Annotations == nil {
			spec.Annotations = &api.Annotations{}
		}
		if o.labelAdd.Len() > 0 && spec.Annotations.Labels == nil {
			spec.Annotations.Labels = map[string]string{}
		}
		for k, v := range opts.KVMap(o.labelAdd.GetAll()) {
			spec.Annotations.Labels[k] = v
		}
		for _, k := range o.labelRm.GetAll() {
			if _, ok := spec.Annotations.Labels[k]; !ok {
				return fmt.Errorf("key %s doesn't exist in node's labels", k)
			}
			delete(spec.Annotations.Labels, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(cli.Out, ref)
	return nil
}

func parseRole(s string) api.NodeRole {
	if s == "manager" {
		return api.NodeRole_MANAGER
	}
	return api.NodeRole_WORKER
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
