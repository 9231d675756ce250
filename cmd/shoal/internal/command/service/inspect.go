package service

import (
	"context"

	"github.com/moby/moby/api/types/swarm"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/dockerapi/convert"
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
		Long: "Display detailed information on one or more services\n\n" +
			"The JSON is Docker's (the Engine API's Service with its defaults filled in, as\n" +
			"`docker service inspect` prints it), and --format templates use its field names:\n" +
			"{{.Spec.Mode.Replicated.Replicas}}, {{.UpdateStatus.State}}.",
		Args: command.MinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := command.CheckInspectFormat(format, pretty); err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := cli.Control()
			if err != nil {
				return err
			}
			get := func(ref string) (swarm.Service, error) {
				resp, err := c.GetService(ctx, &api.GetServiceRequest{ServiceId: ref})
				if err != nil {
					return swarm.Service{}, err
				}
				return DockerService(resp.GetService()), nil
			}
			notFound := func(ref string) string { return "Error: no such service: " + command.Ref(ref) }
			if !pretty {
				return command.InspectDocker(cli, args, format, get, notFound)
			}
			netName := networkNamer(ctx, c)
			return command.InspectPretty(args, get, notFound, func(_ int, svc swarm.Service) {
				printPretty(cli.Out, svc, cli.Clock.Now(), netName)
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	cmd.Flags().BoolVar(&pretty, "pretty", false, "Print the information in a human friendly format")
	return cmd
}

// DockerService is s as `docker service inspect` shows it: the Engine
// API's conversion with the defaults written into the spec and the
// previous spec (?insertDefaults=true).
func DockerService(s *api.Service) swarm.Service {
	s = proto.Clone(s).(*api.Service)
	if s.Spec != nil {
		s.Spec = convert.ServiceSpecWithDefaults(s.GetSpec())
	}
	if s.PreviousSpec != nil {
		s.PreviousSpec = convert.ServiceSpecWithDefaults(s.GetPreviousSpec())
	}
	return convert.ServiceToMoby(s)
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
