package command

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
)

// CheckInspectFormat refuses --format with --pretty and a --format that does
// not parse, before anything is asked of the daemon.
func CheckInspectFormat(format string, pretty bool) error {
	if pretty && format != "" {
		return errors.New("--format is incompatible with human friendly format")
	}
	if format != "" && format != formatter.JSONFormatKey {
		if _, err := formatter.Parse(format); err != nil {
			return err
		}
	}
	return nil
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

// InspectDocker is `inspect` of objects in Docker's schema (the values of
// dockerapi/convert, the ones the Engine API answers), printed as the
// docker CLI prints them: without format, one JSON array indented with
// four spaces; with format "json", the array on one line; else a Go
// template per object, run on the value and, when that fails (a field the
// type lacks), on its JSON form decoded into maps (so {{.Id}} and
// {{.ID}} both work, as with docker). Refs the daemon does not know and
// template errors are reported together at the end (exit status 1); any
// other error stops at once.
func InspectDocker[T any](cli *Cli, refs []string, format string, get func(string) (T, error), notFound func(string) string) error {
	var objs []T
	missing, err := EachFound(refs, get, notFound, func(_ int, obj T) { objs = append(objs, obj) })
	if err != nil {
		return err
	}
	switch format {
	case "", formatter.JSONFormatKey:
		if err := formatter.WriteDockerJSON(cli.Out, objs, format == ""); err != nil {
			return err
		}
		return missingError(missing)
	}
	tmpl, err := formatter.Parse(format)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	for _, obj := range objs {
		b, err := formatter.ExecuteDocker(tmpl, obj)
		if err != nil {
			missing = append(missing, err.Error())
			continue
		}
		out.Write(b)
		out.WriteByte('\n')
	}
	if out.Len() == 0 {
		out.WriteByte('\n') // docker prints an empty line when nothing matched
	}
	if _, err := cli.Out.Write(out.Bytes()); err != nil {
		return fmt.Errorf("writing the inspect output: %w", err)
	}
	return missingError(missing)
}
