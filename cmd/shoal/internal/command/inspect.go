package command

import (
	"errors"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
)

// CheckInspectFormat refuses --format with --pretty and a --format that does
// not parse, before anything is asked of the daemon.
func CheckInspectFormat(format string, pretty bool) error {
	if pretty && format != "" {
		return errors.New("--format is incompatible with human friendly format")
	}
	if format != "" {
		if _, err := formatter.Parse(format); err != nil {
			return err
		}
	}
	return nil
}

// Inspect fetches every ref with get and prints the objects found: with
// format as a template per object, else as one JSON array (Docker's
// `inspect`). Refs the daemon does not know are reported together at the end
// (exit status 1) with notFound's words; any other error stops at once.
func Inspect(cli *Cli, refs []string, format string, get func(string) (proto.Message, error), notFound func(string) string) error {
	var objs []proto.Message
	missing, err := EachFound(refs, get, notFound, func(_ int, obj proto.Message) { objs = append(objs, obj) })
	if err != nil {
		return err
	}
	if format != "" {
		err = formatter.WriteTemplate(cli.Out, format, objs)
	} else {
		err = formatter.WriteJSONArray(cli.Out, objs)
	}
	if err != nil {
		return err
	}
	return missingError(missing)
}

// InspectPretty is `inspect --pretty`: print writes each object found (i is
// its ref's index in refs) as it comes; the refs the daemon does not know are
// reported together at the end (exit status 1) with notFound's words, and any
// other error stops at once.
func InspectPretty[T any](refs []string, get func(string) (T, error), notFound func(string) string, print func(i int, obj T)) error {
	missing, err := EachFound(refs, get, notFound, print)
	if err != nil {
		return err
	}
	return missingError(missing)
}
