package command

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
)

// FlagErrorFunc words flag parsing errors like Docker, exit status 125.
func FlagErrorFunc(cmd *cobra.Command, err error) error {
	if err == nil {
		return nil
	}
	err = explainRange(cmd, err)
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

// MaxAnnotation, set on a flag (pflag annotations), holds the largest value
// the daemon accepts for it: "1000000", "1h0m0s". Overflow errors then name
// that limit rather than the limit of the flag's type.
const MaxAnnotation = "shoal/max"

// rangeRE matches pflag's error for a number its type cannot hold;
// tooLargeRE a value our flag types refuse as too large.
var (
	rangeRE    = regexp.MustCompile(`^invalid argument "([^"]*)" for "(-\w, )?--([\w-]+)" flag: strconv\.Parse\w+: parsing "[^"]*": value out of range$`)
	tooLargeRE = regexp.MustCompile(`^invalid argument "([^"]*)" for "(-\w, )?--([\w-]+)" flag: .* is too large`)
)

// explainRange words an integer flag's overflow as a number too large,
// with the largest value accepted, instead of strconv's "value out of
// range" (a negative one for a signed type is too small).
func explainRange(cmd *cobra.Command, err error) error {
	m := rangeRE.FindStringSubmatch(err.Error())
	if m == nil {
		m = tooLargeRE.FindStringSubmatch(err.Error())
	}
	if m == nil {
		return err
	}
	f := cmd.Flags().Lookup(m[3])
	if f == nil {
		return err
	}
	value := m[1]
	if len(value) > 64 {
		value = value[:64] + "…"
	}
	limits := map[string][2]string{
		"int": {"-9223372036854775808", "9223372036854775807"}, "int64": {"-9223372036854775808", "9223372036854775807"},
		"int32": {"-2147483648", "2147483647"}, "uint64": {"0", "18446744073709551615"}, "uint": {"0", "18446744073709551615"},
		"uint32": {"0", "4294967295"}, "uint16": {"0", "65535"},
	}
	l, known := limits[f.Value.Type()]
	if strings.HasPrefix(m[1], "-") {
		if !known {
			return err
		}
		return fmt.Errorf("invalid argument %q for \"--%s\" flag: the number is too small: the minimum is %s", value, m[3], l[0])
	}
	if max := f.Annotations[MaxAnnotation]; len(max) > 0 {
		return fmt.Errorf("invalid argument %q for \"--%s\" flag: it is too large: the maximum is %s", value, m[3], max[0])
	}
	if !known {
		return err
	}
	return fmt.Errorf("invalid argument %q for \"--%s\" flag: the number is too large: the maximum is %s", value, m[3], l[1])
}
