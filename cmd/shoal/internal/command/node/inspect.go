package node

import (
	"fmt"
	"io"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	api "github.com/shoal-project/shoal/proto"
)

type inspectOptions struct {
	format string
	pretty bool
}

func newInspectCommand(cli *command.Cli) *cobra.Command {
	o := &inspectOptions{}
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] self|NODE [NODE...]",
		Short: "Display detailed information on one or more nodes",
		Args:  command.MinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInspect(cmd, cli, o, args)
		},
	}
	flags := cmd.Flags()
	flags.StringVarP(&o.format, "format", "f", "", "Format output using a custom template")
	flags.BoolVar(&o.pretty, "pretty", false, "Print the information in a human friendly format")
	return cmd
}

func runInspect(cmd *cobra.Command, cli *command.Cli, o *inspectOptions, refs []string) error {
	if err := command.CheckInspectFormat(o.format, o.pretty); err != nil {
		return err
	}
	ctx := cmd.Context()
	c, err := cli.Control()
	if err != nil {
		return err
	}
	get := func(ref string) (*api.Node, error) { return getNode(ctx, cli, c, ref) }
	notFound := func(ref string) string { return "Error: No such node: " + command.Ref(ref) }
	if !o.pretty {
		return command.Inspect(cli, refs, o.format, func(ref string) (proto.Message, error) { return get(ref) }, notFound)
	}
	return command.InspectPretty(refs, get, notFound, func(i int, n *api.Node) {
		if i > 0 {
			fmt.Fprintln(cli.Out)
		}
		printPretty(cli.Out, n, cli.Clock.Now())
	})
}

func line(out io.Writer, key, value string) {
	fmt.Fprintf(out, "%-22s%s\n", key+":", value)
}

// printPretty writes `node inspect --pretty`.
func printPretty(out io.Writer, n *api.Node, now time.Time) {
	line(out, "ID", n.GetId())
	if name := n.GetSpec().GetAnnotations().GetName(); name != "" {
		line(out, "Name", name)
	}
	formatter.PrintLabels(out, "Labels", n.GetSpec().GetAnnotations().GetLabels())
	line(out, "Hostname", n.GetDescription().GetHostname())
	if ts := n.GetMeta().GetCreatedAt(); ts != nil {
		line(out, "Joined at", ts.AsTime().UTC().Format(time.RFC3339)+" ("+formatter.HumanAgo(now, ts.AsTime())+")")
	}
	fmt.Fprintln(out, "Status:")
	line(out, " State", formatter.PrettyState(n.GetStatus().GetState().String()))
	if msg := n.GetStatus().GetMessage(); msg != "" {
		line(out, " Message", msg)
	}
	line(out, " Availability", formatter.PrettyState(n.GetSpec().GetAvailability().String()))
	if addr := n.GetStatus().GetAddr(); addr != "" {
		line(out, " Address", addr)
	}
	if ms := n.GetManagerStatus(); ms != nil {
		fmt.Fprintln(out, "Manager Status:")
		line(out, " Address", ms.GetAddr())
		reach := formatter.PrettyState(ms.GetReachability().String())
		if ms.GetReachability() == api.Reachability_REACHABILITY_UNKNOWN {
			reach = "Unknown"
		}
		line(out, " Raft Status", reach)
		leader := "No"
		if ms.GetLeader() {
			leader = "Yes"
		}
		line(out, " Leader", leader)
		if f := ms.GetDiskFault(); f != "" {
			line(out, " Raft Log", f+": it cannot be written; the manager takes no part in raft until it can")
		}
	}
	desc := n.GetDescription()
	fmt.Fprintln(out, "Platform:")
	line(out, " Operating System", desc.GetPlatform().GetOs())
	line(out, " Architecture", desc.GetPlatform().GetArchitecture())
	fmt.Fprintln(out, "Resources:")
	line(out, " CPUs", fmt.Sprintf("%g", float64(desc.GetResources().GetNanoCpus())/1e9))
	line(out, " Memory", units.BytesSize(float64(desc.GetResources().GetMemoryBytes())))
	line(out, "Engine Version", desc.GetEngine().GetEngineVersion())
	formatter.PrintLabels(out, "Engine Labels", desc.GetEngine().GetLabels())
}
