package command

import (
	"errors"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	"github.com/shoal-project/shoal/errdefs"
)

// Inspect fetches every ref with get and prints the objects found: with
// format as a template per object, else as one JSON array (Docker's
// `inspect`). Refs the daemon does not know are reported together at the end
// (exit status 1) with notFound's words; any other error stops at once.
func Inspect(cli *Cli, refs []string, format string, get func(string) (proto.Message, error), notFound func(string) string) error {
	var (
		objs []proto.Message
		errs []string
	)
	for _, ref := range refs {
		obj, err := get(ref)
		if err != nil {
			if errors.Is(err, errdefs.ErrNotFound) {
				errs = append(errs, notFound(ref))
				continue
			}
			return err
		}
		objs = append(objs, obj)
	}
	var err error
	if format != "" {
		err = formatter.WriteTemplate(cli.Out, format, objs)
	} else {
		err = formatter.WriteJSONArray(cli.Out, objs)
	}
	if err != nil {
		return err
	}
	if len(errs) > 0 {
		return StatusError{Status: strings.Join(errs, "\n"), Code: 1}
	}
	return nil
}

// JoinErrors reports several per-item failures as one error, one per line.
func JoinErrors(errs []string) error {
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "\n"))
}
