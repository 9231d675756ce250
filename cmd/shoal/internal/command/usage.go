package command

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// FlagErrorFunc words flag parsing errors as docker 28.2.2 does: the error,
// the command's usage line and a pointer to --help; exit status 125
// (UsageExitCode).
func FlagErrorFunc(cmd *cobra.Command, err error) error {
	if err == nil {
		return nil
	}
	code := UsageExitCode
	if dockerParses(err) {
		code = 1
	}
	err = explainRange(cmd, err)
	return StatusError{
		Status: fmt.Sprintf("%s\n\nUsage:  %s\n\nRun '%s --help' for more information", err, usageLine(cmd), cmd.CommandPath()),
		Code:   code,
	}
}

// dockerFlagKinds names the flags whose value docker's parser takes as a
// plain string, duration, number or boolean and checks only later (in the
// CLI after parsing, or on the daemon), where shoal's flag types refuse a
// bad value at once. Docker exits 1 for such a value, not 125, when its
// basic type accepts it: "--stop-grace-period -5s" is a duration docker
// parses and the daemon refuses, "--stop-grace-period soon" is not.
var dockerFlagKinds = map[string]string{
	"mode": "string", "restart-condition": "string", "constraint": "string",
	"update-failure-action": "string", "rollback-failure-action": "string",
	"update-order": "string", "rollback-order": "string", "sysctl": "string",
	"availability": "string", "role": "string", "endpoint-mode": "string",
	"stop-grace-period": "duration", "restart-delay": "duration", "restart-window": "duration",
	"update-delay": "duration", "update-monitor": "duration", "rollback-delay": "duration",
	"rollback-monitor": "duration", "health-interval": "duration", "health-timeout": "duration",
	"health-start-period": "duration", "health-start-interval": "duration",
	"update-max-failure-ratio": "float", "rollback-max-failure-ratio": "float",
	"health-retries": "int", "replicas": "uint", "max-concurrent": "uint",
	"replicas-max-per-node": "uint", "update-parallelism": "uint", "rollback-parallelism": "uint",
}

// flagValueRE matches pflag's error for a value a flag refused.
var flagValueRE = regexp.MustCompile(`^invalid argument "((?:[^"\\]|\\.)*)" for "(?:-\w, )?--([\w-]+)" flag: `)

// dockerParses reports whether err refuses a value that docker's parser
// would have accepted (dockerFlagKinds).
func dockerParses(err error) bool {
	m := flagValueRE.FindStringSubmatch(err.Error())
	if m == nil {
		return false
	}
	value, uerr := strconv.Unquote(`"` + m[1] + `"`)
	if uerr != nil {
		return false
	}
	switch dockerFlagKinds[m[2]] {
	case "string":
		return true
	case "duration":
		_, perr := time.ParseDuration(value)
		return perr == nil
	case "float":
		_, perr := strconv.ParseFloat(value, 64)
		return perr == nil
	case "int":
		_, perr := strconv.ParseInt(value, 0, 64)
		return perr == nil
	case "uint":
		_, perr := strconv.ParseUint(value, 0, 64)
		return perr == nil
	}
	return false
}

// usageLine is the command's usage as its help starts: "shoal service
// create [OPTIONS] IMAGE [COMMAND] [ARG...]", or the bare path for a command
// that only groups others ("shoal service"), as docker prints them; the
// root's is its own ("shoal [OPTIONS] COMMAND [ARG...]").
func usageLine(cmd *cobra.Command) string {
	if cmd.HasParent() && (!cmd.Runnable() || cmd.HasAvailableSubCommands()) {
		return cmd.CommandPath()
	}
	return cmd.UseLine()
}

func pluralize(word string, n int) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// argsError words a wrong number of arguments as docker 28.2.2 does (exit
// status 1). Docker points to --help with "See" after "requires at least"
// and "requires at most", and with "Run" otherwise; shoal follows it.
func argsError(cmd *cobra.Command, what, verb string) error {
	root := cmd.Root().Name()
	return StatusError{
		Status: fmt.Sprintf("%s: '%s' %s\n\nUsage:  %s\n\n%s '%s --help' for more information",
			root, cmd.CommandPath(), what, usageLine(cmd), verb, cmd.CommandPath()),
		Code: 1,
	}
}

// NoArgs refuses any positional argument.
func NoArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return argsError(cmd, "accepts no arguments", "Run")
}

// ExactArgs wants exactly n positional arguments.
func ExactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		return argsError(cmd, fmt.Sprintf("requires %d %s", n, pluralize("argument", n)), "Run")
	}
}

// MinArgs wants at least n positional arguments.
func MinArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= n {
			return nil
		}
		return argsError(cmd, fmt.Sprintf("requires at least %d %s", n, pluralize("argument", n)), "See")
	}
}

// MaxArgs accepts at most n positional arguments.
func MaxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) <= n {
			return nil
		}
		return argsError(cmd, fmt.Sprintf("requires at most %d %s", n, pluralize("argument", n)), "See")
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
// arguments it prints its help (on stderr, exit status 0, as docker does:
// `shoal help service` prints it on stdout); an unknown subcommand is an
// error worded as docker 28.2.2 words it (exit status 1).
func GroupRunE(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		cmd.SetOut(cmd.ErrOrStderr())
		return cmd.Help()
	}
	root := cmd.Root().Name()
	usage := ""
	if cmd.HasParent() {
		usage = fmt.Sprintf("Usage:  %s\n\n", usageLine(cmd))
	}
	return StatusError{
		Status: fmt.Sprintf("%s: unknown command: %s %s\n\n%sRun '%s --help' for more information", root, cmd.CommandPath(), args[0], usage, cmd.CommandPath()),
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
