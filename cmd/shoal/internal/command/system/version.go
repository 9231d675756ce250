// Package system holds `shoal version`, `shoal info` and `shoal events`.
package system

import (
	"bytes"
	"runtime"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/version"
)

const versionTemplate = `Client:
 Version:	{{.Client.Version}}
 API version:	{{.Client.APIVersion}}
 Go version:	{{.Client.GoVersion}}
{{- if .Client.GitCommit}}
 Git commit:	{{.Client.GitCommit}}{{end}}
 OS/Arch:	{{.Client.Os}}/{{.Client.Arch}}
{{- if .Server}}

Server:
 Version:	{{.Server.Version}}
 Hostname:	{{.Server.Hostname}}
 Swarm:	{{.Server.Swarm}}
{{- if .Server.NodeID}}
 Node ID:	{{.Server.NodeID}}{{end}}
{{- end}}
`

// ClientVersion describes this binary.
type ClientVersion struct {
	Version    string
	APIVersion string
	GoVersion  string
	GitCommit  string
	Os         string
	Arch       string
}

// ServerVersion describes the daemon, from its Info.
type ServerVersion struct {
	Version  string
	Hostname string
	Swarm    string
	NodeID   string
}

// VersionInfo is what `version --format` templates see.
type VersionInfo struct {
	Client ClientVersion
	Server *ServerVersion
}

// NewVersionCommand returns `shoal version`.
func NewVersionCommand(cli *command.Cli) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "version [OPTIONS]",
		Short: "Show the shoal version information",
		Args:  command.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runVersion(cmd, cli, format)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	return cmd
}

func runVersion(cmd *cobra.Command, cli *command.Cli, format string) error {
	text := versionTemplate
	if format != "" {
		text = format + "\n"
	}
	tmpl, err := formatter.Parse(text)
	if err != nil {
		return err
	}
	v := VersionInfo{Client: ClientVersion{
		Version:    version.Version,
		APIVersion: version.APIVersion,
		GoVersion:  runtime.Version(),
		GitCommit:  version.GitCommit,
		Os:         runtime.GOOS,
		Arch:       runtime.GOARCH,
	}}
	var serverErr error
	cl, err := cli.Client()
	if err == nil {
		var info *api.InfoResponse
		info, serverErr = cl.Local.Info(cmd.Context(), &api.InfoRequest{})
		if serverErr == nil {
			v.Server = &ServerVersion{
				Version:  info.GetVersion(),
				Hostname: info.GetHostname(),
				Swarm:    swarmState(info.GetState()),
				NodeID:   info.GetNodeId(),
			}
		}
	} else {
		serverErr = err
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, v); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(cli.Out, 20, 1, 1, ' ', 0)
	_, _ = tw.Write(buf.Bytes())
	if err := tw.Flush(); err != nil {
		return err
	}
	return serverErr
}
