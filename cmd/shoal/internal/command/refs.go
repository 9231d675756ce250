package command

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// EachFound fetches every ref with get and hands the objects found to visit,
// with the ref's index in refs. Refs the daemon does not know are worded with
// notFound and returned in missing; any other error stops at once.
func EachFound[T any](refs []string, get func(string) (T, error), notFound func(string) string, visit func(i int, obj T)) (missing []string, err error) {
	for i, ref := range refs {
		obj, err := get(ref)
		if err != nil {
			if !errors.Is(err, errdefs.ErrNotFound) {
				return nil, err
			}
			missing = append(missing, notFound(ref))
			continue
		}
		visit(i, obj)
	}
	return missing, nil
}

// Remove removes each ref with rm and prints the ref on success. Failures
// are reported together at the end, except that a daemon that cannot be
// reached stops at once.
func Remove(cli *Cli, refs []string, rm func(string) error) error {
	var errs []string
	for _, ref := range refs {
		if err := rm(ref); err != nil {
			if IsConnectError(err) {
				return err
			}
			errs = append(errs, err.Error())
			continue
		}
		fmt.Fprintln(cli.Out, ref)
	}
	return JoinErrors(errs)
}

// NewRemoveCommand returns an `rm` command (alias `remove`, at least one
// argument) that removes each ref with rm as Remove does.
func NewRemoveCommand(cli *Cli, use, short string, rm func(ctx context.Context, c api.ControlClient, ref string) error) *cobra.Command {
	return &cobra.Command{
		Use:     use,
		Aliases: []string{"remove"},
		Short:   short,
		Args:    MinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cli.Control()
			if err != nil {
				return err
			}
			return Remove(cli, args, func(ref string) error { return rm(cmd.Context(), c, ref) })
		},
	}
}

// Ref is a user's reference as messages repeat it: cut to 64 bytes (on a
// rune boundary) with its length when it is longer.
func Ref(ref string) string {
	if len(ref) <= api.MaxEchoBytes {
		return ref
	}
	cut := api.MaxEchoBytes
	for cut > 0 && !utf8.RuneStart(ref[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d bytes)", ref[:cut], len(ref))
}

// JoinErrors reports several per-item failures as one error, one per line.
func JoinErrors(errs []string) error {
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "\n"))
}

// missingError reports the refs not found together (exit status 1).
func missingError(missing []string) error {
	if len(missing) == 0 {
		return nil
	}
	return StatusError{Status: strings.Join(missing, "\n"), Code: 1}
}
