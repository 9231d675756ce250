package service

import (
	"context"
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
			netName := networkNamer(ctx, c)
			return command.InspectPretty(args, get, notFound, func(i int, svc *api.Service) {
				if i > 0 {
					fmt.Fprintln(cli.Out)
				}
				printPretty(cli.Out, svc, cli.Clock.Now(), netName)
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	cmd.Flags().BoolVar(&pretty, "pretty", false, "Print the information in a human friendly format")
	return cmd
}

// networkNamer names networks by ID for --pretty, listing them once, on
// first use; a network it cannot find (or list) keeps its ID.
func networkNamer(ctx context.Context, c api.ControlClient) func(string) string {
	var names map[string]string
	return func(id string) string {
		if names == nil {
			names = map[string]string{}
			if resp, err := c.ListNetworks(ctx, &api.ListNetworksRequest{}); err == nil {
				for _, n := range resp.GetNetworks() {
					names[n.GetId()] = n.GetSpec().GetAnnotations().GetName()
				}
			}
		}
		if name := names[id]; name != "" {
			return name
		}
		return id
	}
}
