package service

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	api "github.com/shoal-project/shoal/proto"
)

func newRollbackCommand(cli *command.Cli) *cobra.Command {
	var detach, quiet bool
	cmd := &cobra.Command{
		Use:   "rollback [OPTIONS] SERVICE",
		Short: "Revert changes to a service's configuration",
		Long:  "Revert changes to a service's configuration" + convergeHelp,
		Args:  command.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref := args[0]
			ctx := cmd.Context()
			c, err := cli.Control()
			if err != nil {
				return err
			}
			resp, err := c.GetService(ctx, &api.GetServiceRequest{ServiceId: ref})
			if err != nil {
				return err
			}
			svc := resp.GetService()
			uresp, err := c.UpdateService(ctx, &api.UpdateServiceRequest{
				ServiceId:      svc.GetId(),
				ServiceVersion: svc.GetMeta().GetVersion(),
				Spec:           svc.GetSpec(),
				Rollback:       api.UpdateServiceRequest_PREVIOUS,
			})
			if err != nil {
				return err
			}
			printWarnings(cli, uresp.GetWarnings())
			fmt.Fprintln(cli.Out, ref)
			if detach {
				return nil
			}
			return waitOnService(ctx, cli, c, svc.GetId(), ref, quiet)
		},
	}
	cmd.Flags().BoolVarP(&detach, flagDetach, "d", false, "Exit immediately instead of waiting for the service to converge")
	cmd.Flags().BoolVarP(&quiet, flagQuiet, "q", false, "Suppress progress output")
	return cmd
}
