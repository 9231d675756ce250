package service

import (
	"fmt"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	api "github.com/shoal-project/shoal/proto"
)

func newInspectCommand(cli *command.Cli) *cobra.Command {
	var (
		format string
		pretty bool
	)
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] SERVICE [SERVICE...]",
		Short: "Display detailed information on one or more services",
		Args:  command.MinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := command.CheckInspectFormat(format, pretty); err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := cli.Control()
			if err != nil {
				return err
			}
			get := func(ref string) (*api.Service, error) {
				resp, err := c.GetService(ctx, &api.GetServiceRequest{ServiceId: ref})
				return resp.GetService(), err
			}
			notFound := func(ref string) string { return "Error: no such service: " + command.Ref(ref) }
			if !pretty {
				return command.Inspect(cli, args, format, func(ref string) (proto.Message, error) { return get(ref) }, notFound)
			}
			return command.InspectPretty(args, get, notFound, func(i int, svc *api.Service) {
				if i > 0 {
					fmt.Fprintln(cli.Out)
				}
				printPretty(cli.Out, svc, cli.Clock.Now())
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	cmd.Flags().BoolVar(&pretty, "pretty", false, "Print the information in a human friendly format")
	return cmd
}
