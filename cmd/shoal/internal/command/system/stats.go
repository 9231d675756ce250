package system

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	api "github.com/shoal-project/shoal/proto"
)

type statsOptions struct {
	node     string
	noStream bool
	noTrunc  bool
	format   string
}

// statsInterval is the refresh period of the streamed table (docker's).
const statsInterval = time.Second

// NewStatsCommand returns `shoal stats` (docker stats for the whole swarm).
func NewStatsCommand(cli *command.Cli) *cobra.Command {
	var o statsOptions
	cmd := &cobra.Command{
		Use:   "stats [OPTIONS] [SERVICE...]",
		Short: "Display a live stream of the swarm's task resource usage statistics",
		Long: `Display a live stream of resource usage statistics of the swarm's running tasks:
CPU (100% is one core), memory use and limit, network and block I/O, processes.

Unlike docker stats, which sees one host's containers, the managers gather the
readings from every node; the table is grouped by service. Nodes that do not
answer within 3 seconds are named on stderr.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStats(cmd.Context(), cli, args, o)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&o.node, "node", "", "Only tasks on this node (name or ID)")
	flags.BoolVar(&o.noStream, "no-stream", false, "Disable streaming stats and only pull the first result")
	flags.BoolVar(&o.noTrunc, "no-trunc", false, "Do not truncate output")
	flags.StringVar(&o.format, "format", "", formatter.ListFormatHelp)
	return cmd
}

func runStats(ctx context.Context, cli *command.Cli, services []string, o statsOptions) error {
	format, err := formatter.ParseList(o.format, false, formatter.StatsTableFormat)
	if err != nil {
		return err
	}
	client, err := cli.Client()
	if err != nil {
		return err
	}
	req := &api.TaskStatsRequest{Services: services, Node: o.node}
	names := map[string]string{}
	warned := map[string]bool{}
	for {
		resp, err := client.Stats.TaskStats(ctx, req)
		if err != nil {
			return err
		}
		for _, w := range resp.GetWarnings() {
			if !warned[w] {
				warned[w] = true
				fmt.Fprintf(cli.Err, "Warning: %s\n", w)
			}
		}
		if err := nodeNames(ctx, client, resp.GetStats(), names); err != nil {
			return err
		}
		rows := make([]any, 0, len(resp.GetStats()))
		for _, s := range resp.GetStats() {
			rows = append(rows, formatter.NewStatsRow(s, names[s.GetNodeId()], o.noTrunc))
		}
		if !o.noStream && cli.OutIsTerminal {
			// Redraw in place: clear the screen, cursor home.
			if _, err := io.WriteString(cli.Out, "\033[2J\033[H"); err != nil {
				return err
			}
		}
		if err := formatter.Write(cli.Out, format, formatter.StatsHeader, rows); err != nil {
			return err
		}
		if o.noStream {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-cli.Clock.After(statsInterval):
		}
	}
}

// nodeNames adds the hostnames of nodes not yet in names.
func nodeNames(ctx context.Context, client *command.Client, sts []*api.TaskStats, names map[string]string) error {
	missing := false
	for _, s := range sts {
		if _, ok := names[s.GetNodeId()]; !ok {
			missing = true
		}
	}
	if !missing {
		return nil
	}
	resp, err := client.Control.ListNodes(ctx, &api.ListNodesRequest{})
	if err != nil {
		return err
	}
	for _, n := range resp.GetNodes() {
		name := n.GetSpec().GetAnnotations().GetName()
		if name == "" {
			name = n.GetDescription().GetHostname()
		}
		names[n.GetId()] = name
	}
	return nil
}
