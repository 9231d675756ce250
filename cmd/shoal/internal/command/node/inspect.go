package node

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"sort"
	"strings"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/swarm"
	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	"github.com/shoal-project/shoal/dockerapi/convert"
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
		Long: "Display detailed information on one or more nodes\n\n" +
			"The JSON is Docker's (the Engine API's Node, as `docker node inspect` prints it),\n" +
			"and --format templates use its field names: {{.Status.Addr}}, {{.Spec.Role}}.",
		Args: command.MinArgs(1),
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
	tls := clusterTLS(ctx, c)
	var faults map[string]string
	get := func(ref string) (swarm.Node, error) {
		n, err := getNode(ctx, cli, c, ref)
		if err != nil {
			return swarm.Node{}, err
		}
		if f := n.GetManagerStatus().GetDiskFault(); f != "" {
			if faults == nil {
				faults = map[string]string{}
			}
			faults[n.GetId()] = f
		}
		return convert.NodeToMoby(n, tls()), nil
	}
	notFound := func(ref string) string { return "Error response from daemon: node " + command.Ref(ref) + " not found" }
	if !o.pretty {
		return command.InspectDocker(cli, refs, o.format, get, notFound)
	}
	return command.InspectPretty(refs, get, notFound, func(_ int, n swarm.Node) {
		printPretty(cli.Out, n, faults[n.ID])
	})
}

// clusterTLS returns the cluster's trust root as every node's description
// shows it (what the Engine API answers), read once, on first use. A root
// CA that cannot be read leaves it empty, as the Engine API does.
func clusterTLS(ctx context.Context, c api.ControlClient) func() swarm.TLSInfo {
	var (
		info   swarm.TLSInfo
		loaded bool
	)
	return func() swarm.TLSInfo {
		if !loaded {
			loaded = true
			if resp, err := c.GetCluster(ctx, &api.GetClusterRequest{}); err == nil {
				info, _ = convert.TLSInfoFromCA(resp.GetCluster().GetRootCa().GetCaCert())
			}
		}
		return info
	}
}

// printPretty writes `node inspect --pretty` as docker 28.2 lays it out
// (tabs included). fault is the manager's raft log disk fault, a line of
// shoal's own when set.
func printPretty(out io.Writer, n swarm.Node, fault string) {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("ID:\t\t\t%s", n.ID)
	if n.Spec.Name != "" {
		w("\nName:\t\t\t%s", n.Spec.Name)
	}
	labels(&b, "Labels", n.Spec.Labels)
	w("\nHostname:              \t%s", n.Description.Hostname)
	w("\nJoined at:             \t%s", formatter.DockerPretty(n.CreatedAt.String()))
	w("\nStatus:\n State:\t\t\t%s", formatter.DockerPretty(string(n.Status.State)))
	if n.Status.Message != "" {
		w("\n Message:              \t%s", formatter.DockerPretty(n.Status.Message))
	}
	w("\n Availability:         \t%s", formatter.DockerPretty(string(n.Spec.Availability)))
	if n.Status.Addr != "" {
		w("\n Address:\t\t%s", n.Status.Addr)
	}
	if ms := n.ManagerStatus; ms != nil {
		w("\nManager Status:\n Address:\t\t%s\n Raft Status:\t\t%s", ms.Addr, formatter.DockerPretty(string(ms.Reachability)))
		if ms.Leader {
			w("\n Leader:\t\tYes")
		} else {
			w("\n Leader:\t\tNo")
		}
		if fault != "" {
			w("\n Raft Log:\t\t%s: it cannot be written; the manager takes no part in raft until it can", fault)
		}
	}
	w("\nPlatform:\n Operating System:\t%s\n Architecture:\t\t%s", n.Description.Platform.OS, n.Description.Platform.Architecture)
	mem := ""
	if m := n.Description.Resources.MemoryBytes; m != 0 {
		mem = units.BytesSize(float64(m))
	}
	w("\nResources:\n CPUs:\t\t\t%d\n Memory:\t\t%s", n.Description.Resources.NanoCPUs/1e9, mem)
	if plugins := n.Description.Engine.Plugins; len(plugins) > 0 {
		byType := map[string][]string{}
		for _, p := range plugins {
			byType[p.Type] = append(byType[p.Type], p.Name)
		}
		types := make([]string, 0, len(byType))
		for t := range byType {
			types = append(types, t)
		}
		sort.Strings(types)
		w("\nPlugins:")
		for _, t := range types {
			w("\n %s:\t\t%s", t, strings.Join(byType[t], ", "))
		}
	}
	w("\nEngine Version:\t\t%s", n.Description.Engine.EngineVersion)
	labels(&b, "Engine Labels", n.Description.Engine.Labels)
	if tls := n.Description.TLSInfo; tls.TrustRoot != "" || len(tls.CertIssuerSubject) > 0 || len(tls.CertIssuerPublicKey) > 0 {
		w("\nTLS Info:\n TrustRoot:\n%s\n Issuer Subject:\t%s\n Issuer Public Key:\t%s", tls.TrustRoot,
			base64.StdEncoding.EncodeToString(tls.CertIssuerSubject), base64.StdEncoding.EncodeToString(tls.CertIssuerPublicKey))
	}
	b.WriteString("\n")
	_, _ = io.WriteString(out, b.String())
}

// labels writes "\nTitle:" and a " - k=v" line per label, sorted by key,
// when there are any.
func labels(b *strings.Builder, title string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(b, "\n%s:", title)
	for _, k := range keys {
		if v := m[k]; v != "" {
			fmt.Fprintf(b, "\n - %s=%s", k, v)
		} else {
			fmt.Fprintf(b, "\n - %s", k)
		}
	}
}
