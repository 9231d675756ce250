package swarm

import (
	"fmt"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	api "github.com/shoal-project/shoal/proto"
)

func newUpdateCommand(cli *command.Cli) *cobra.Command {
	o := &swarmOptions{}
	cmd := &cobra.Command{
		Use:   "update [OPTIONS]",
		Short: "Update the swarm",
		Args:  command.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUpdate(cmd, cli, o)
		},
	}
	addSwarmFlags(cmd.Flags(), o, false)
	return cmd
}

func runUpdate(cmd *cobra.Command, cli *command.Cli, o *swarmOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	ctx := cmd.Context()
	c, err := cli.Control()
	if err != nil {
		return err
	}
	cluster, err := getCluster(ctx, c)
	if err != nil {
		return err
	}
	spec := proto.Clone(cluster.GetSpec()).(*api.ClusterSpec)
	if spec == nil {
		spec = &api.ClusterSpec{}
	}
	prevAutolock := spec.GetEncryption().GetAutoLockManagers()
	o.mergeSpec(spec, cmd.Flags(), false)
	_, err = c.UpdateCluster(ctx, &api.UpdateClusterRequest{
		ClusterId:      cluster.GetId(),
		ClusterVersion: cluster.GetMeta().GetVersion(),
		Spec:           spec,
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(cli.Out, "Swarm updated.")
	if spec.GetEncryption().GetAutoLockManagers() && !prevAutolock {
		resp, err := c.GetUnlockKey(ctx, &api.GetUnlockKeyRequest{})
		if err != nil {
			return fmt.Errorf("could not fetch unlock key: %w", err)
		}
		printUnlockCommand(cli.Out, resp.GetUnlockKey())
	}
	return nil
}
