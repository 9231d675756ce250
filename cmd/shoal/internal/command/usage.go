package command

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// FlagErrorFunc words flag parsing errors like Docker, exit status 125.
func FlagErrorFunc(cmd *cobra.Command, err error) error {
	if err == nil {
		return nil
	}
	return StatusError{
		Status: fmt.Sprintf("%s\nSee '%s --help'.", err, cmd.CommandPath()),
		Code:   UsageExitCode,
	}
}

func pluralize(word string, n int) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func argsError(cmd *cobra.Command, what string) error {
	return fmt.Errorf("%q %s.\nSee '%s --help'.\n\nUsage:  %s\n\n%s",
		cmd.CommandPath(), what, cmd.CommandPath(), cmd.UseLine(), cmd.Short)
}

// NoArgs refuses any positional argument.
func NoArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return argsError(cmd, "accepts no arguments")
}

// ExactArgs wants exactly n positional arguments.
func ExactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		return argsError(cmd, fmt.Sprintf("requires exactly %d %s", n, pluralize("argument", n)))
	}
}

// MinArgs wants at least n positional arguments.
func MinArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= n {
			return nil
		}
		return argsError(cmd, fmt.Sprintf("requires at least %d %s", n, pluralize("argument", n)))
	}
}

// MaxArgs accepts at most n positional arguments.
func MaxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) <= n {
			return nil
		}
		return argsError(cmd, fmt.Sprintf("requires at most %d %s", n, pluralize("argument", n)))
	}
}

// NewGroup returns a command that only groups subcommands (`shoal secret`,
// `shoal node`…): without arguments it prints its help.
func NewGroup(use, short string, subcommands ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE:  GroupRunE,
	}
	cmd.AddCommand(subcommands...)
	return cmd
}

// GroupRunE is the RunE of a command that only groups subcommands: without
// arguments it prints its help; an unknown subcommand is an error.
func GroupRunE(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		cmd.SetOut(cmd.OutOrStdout())
		return cmd.Help()
	}
	root := cmd.Root().Name()
	name := strings.TrimSpace(strings.TrimPrefix(cmd.CommandPath(), root) + " " + args[0])
	return StatusError{
		Status: fmt.Sprintf("%s: '%s' is not a %s command.\nSee '%s --help'", root, name, root, cmd.CommandPath()),
		Code:   1,
	}
}
