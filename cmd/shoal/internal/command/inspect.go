package command

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"

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

// InspectJSON is `inspect` for objects the CLI shapes itself as Docker does
// (plain Go values with Docker's field names) rather than printing the
// proto: without format, one indented JSON array; with format, a template
// per object, run on the value and, when the value lacks a field the
// template names, on its JSON form (so {{.Id}} works as well as {{.ID}}, as
// with Docker). Refs the daemon does not know are reported together at the
// end (exit status 1) with notFound's words; any other error stops at once.
func InspectJSON[T any](cli *Cli, refs []string, format string, get func(string) (T, error), notFound func(string) string) error {
	var objs []T
	missing, err := EachFound(refs, get, notFound, func(_ int, obj T) { objs = append(objs, obj) })
	if err != nil {
		return err
	}
	if format == "" {
		if objs == nil {
			objs = []T{}
		}
		enc := json.NewEncoder(cli.Out)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(objs); err != nil {
			return err
		}
		return missingError(missing)
	}
	text := strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(format)
	tmpl, err := formatter.Parse(text)
	if err != nil {
		return err
	}
	tmpl.Option("missingkey=error")
	for _, obj := range objs {
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, obj); err != nil {
			raw, merr := json.Marshal(obj)
			if merr != nil {
				return merr
			}
			var m map[string]any
			if merr := json.Unmarshal(raw, &m); merr != nil {
				return merr
			}
			buf.Reset()
			if rerr := tmpl.Execute(&buf, m); rerr != nil {
				return err
			}
		}
		buf.WriteString("\n")
		if _, err := cli.Out.Write(buf.Bytes()); err != nil {
			return err
		}
	}
	return missingError(missing)
}
