package swarm

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	api "github.com/shoal-project/shoal/proto"
)

type joinTokenOptions struct {
	rotate bool
	quiet  bool
}

func newJoinTokenCommand(cli *command.Cli) *cobra.Command {
	o := &joinTokenOptions{}
	cmd := &cobra.Command{
		Use:   "join-token [OPTIONS] (worker|manager)",
		Short: "Manage join tokens",
		Args:  command.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runJoinToken(cmd, cli, o, args[0])
		},
	}
	flags := cmd.Flags()
	flags.BoolVar(&o.rotate, "rotate", false, "Rotate join token")
	flags.BoolVarP(&o.quiet, "quiet", "q", false, "Only display token")
	return cmd
}

// getCluster returns the swarm's only Cluster object.
func getCluster(ctx context.Context, c api.ControlClient) (*api.Cluster, error) {
	resp, err := c.ListClusters(ctx, &api.ListClustersRequest{})
	if err != nil {
		return nil, err
	}
	if len(resp.GetClusters()) == 0 {
		return nil, errors.New("the daemon returned no cluster object; is this node part of a swarm?")
	}
	return resp.GetClusters()[0], nil
}

func runJoinToken(cmd *cobra.Command, cli *command.Cli, o *joinTokenOptions, role string) error {
	if role != "worker" && role != "manager" {
		return fmt.Errorf("unknown role %s", role)
	}
	worker := role == "worker"
	ctx := cmd.Context()
	cl, err := cli.Client()
	if err != nil {
		return err
	}
	cluster, err := getCluster(ctx, cl.Control)
	if err != nil {
		return err
	}
	if o.rotate {
		_, err := cl.Control.UpdateCluster(ctx, &api.UpdateClusterRequest{
			ClusterId:      cluster.GetId(),
			ClusterVersion: cluster.GetMeta().GetVersion(),
			Spec:           cluster.GetSpec(),
			Rotation:       &api.KeyRotation{WorkerJoinToken: worker, ManagerJoinToken: !worker},
		})
		if err != nil {
			return err
		}
		if !o.quiet {
			fmt.Fprintf(cli.Out, "Successfully rotated %s join token.\n\n", role)
		}
		if cluster, err = getCluster(ctx, cl.Control); err != nil {
			return err
		}
	}
	tokens := cluster.GetRootCa().GetJoinTokens()
	token := tokens.GetManager()
	if worker {
		token = tokens.GetWorker()
	}
	if o.quiet {
		fmt.Fprintln(cli.Out, token)
		return nil
	}
	info, err := cl.Local.Info(ctx, &api.InfoRequest{})
	if err != nil {
		return err
	}
	printJoinCommand(cli.Out, role, token, managerAddr(info))
	return nil
}
