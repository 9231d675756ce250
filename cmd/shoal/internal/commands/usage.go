package commands

import "github.com/spf13/cobra"

// usageTemplate follows Docker's help layout: "Usage:  shoal service create
// [OPTIONS] IMAGE [COMMAND] [ARG...]", then the description, commands and
// options.
const usageTemplate = `Usage:  {{if .HasAvailableSubCommands}}{{.CommandPath}}{{if not .HasParent}} [OPTIONS]{{end}} COMMAND{{else}}{{.UseLine}}{{end}}

{{with or .Long .Short}}{{.}}{{end}}
{{- if gt (len .Aliases) 0}}

Aliases:
  {{.NameAndAliases}}{{end}}
{{- if .HasExample}}

Examples:
{{.Example}}{{end}}
{{- if .HasAvailableSubCommands}}

Commands:
{{- range .Commands}}{{if .IsAvailableCommand}}
  {{rpad .Name .NamePadding}} {{.Short}}{{end}}{{end}}{{end}}
{{- if .HasAvailableLocalFlags}}

Options:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}
{{- if .HasAvailableInheritedFlags}}

Global Options:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}
{{- if .HasAvailableSubCommands}}

Run '{{.CommandPath}} COMMAND --help' for more information on a command.{{end}}
`

// helpTemplate is the usage, which carries the description.
const helpTemplate = `{{.UsageString}}`

func setUsage(cmd *cobra.Command) {
	cmd.DisableFlagsInUseLine = true
	cmd.SetUsageTemplate(usageTemplate)
	cmd.SetHelpTemplate(helpTemplate)
	for _, c := range cmd.Commands() {
		setUsage(c)
	}
}
