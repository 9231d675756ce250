// Package formatter renders lists as Docker does: `table` (tab-aligned with a
// header), `table TEMPLATE`, `json` (one object per line) or a raw Go
// template, with Docker's template functions (json, join, split, lower, upper,
// title, pad, truncate). Row types expose their columns as methods, so a
// template says {{.ID}} or {{.Replicas}}; a header is the same template run
// over a map of column names.
//
// `inspect` prints objects in Docker's schema (the Engine API's types, from
// dockerapi/convert) as the docker CLI does (WriteDockerJSON: four-space
// indent, or one line for --format json; ExecuteDocker: a template on the
// typed value, then on its JSON decoded into maps). The template functions
// accept Docker's named string types (swarm.UpdateOrder) where docker's take
// plain strings.
package formatter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/tabwriter"
	"text/template"
	"unicode"
)

// Format keys every list command understands.
const (
	TableFormatKey = "table"
	JSONFormatKey  = "json"
	QuietFormat    = "{{.ID}}"
)

// ListFormatHelp is the help of a list command's --format flag.
const ListFormatHelp = "Format output using a custom template:\n" +
	"'table':            Print output in table format with column headers (default)\n" +
	"'table TEMPLATE':   Print output in table format using the given Go template\n" +
	"'json':             Print in JSON format\n" +
	"'TEMPLATE':         Print output using the given Go template"

// Format is a --format value.
type Format string

// IsTable tells whether the format prints a header and aligned columns.
func (f Format) IsTable() bool { return strings.HasPrefix(string(f), TableFormatKey) }

// Resolve picks the template to run: quiet wins, then "" or "table" mean the
// default table, "json" one JSON object per row, anything else is used as is.
func Resolve(format string, quiet bool, defaultTable string) Format {
	switch {
	case quiet:
		return QuietFormat
	case format == "" || format == TableFormatKey:
		return Format(defaultTable)
	case format == JSONFormatKey:
		return "{{json .}}"
	}
	return Format(format)
}

// ParseList resolves a list command's --format as Resolve does and checks
// that the template parses, before anything is asked of the daemon.
func ParseList(format string, quiet bool, defaultTable string) (Format, error) {
	f := Resolve(format, quiet, defaultTable)
	if _, err := Parse(string(f)); err != nil {
		return "", err
	}
	return f, nil
}

// Header maps a row method name to its column title.
type Header map[string]string

// Write renders rows with format to out. header gives column titles for
// table formats.
func Write(out io.Writer, format Format, header Header, rows []any) error {
	text := string(format)
	isTable := format.IsTable()
	if isTable {
		text = strings.TrimPrefix(text, TableFormatKey)
	}
	text = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(strings.Trim(text, " "))
	tmpl, err := Parse(text)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, row := range rows {
		if err := tmpl.Execute(&buf, row); err != nil {
			return err
		}
		buf.WriteString("\n")
	}
	if !isTable {
		_, err := io.Copy(out, &buf)
		return err
	}
	tw := tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)
	var hdr bytes.Buffer
	if err := tmpl.Execute(&hdr, map[string]string(header)); err != nil {
		return err
	}
	if hdr.Len() > 0 {
		hdr.WriteString("\n")
		if _, err := tw.Write(hdr.Bytes()); err != nil {
			return err
		}
	}
	if _, err := tw.Write(buf.Bytes()); err != nil {
		return err
	}
	return tw.Flush()
}

// Parse compiles a user template with the shared functions.
func Parse(text string) (*template.Template, error) {
	tmpl, err := template.New("").Funcs(Funcs).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("template parsing error: %w", err)
	}
	return tmpl, nil
}

// Funcs are the template functions of Docker's CLI.
var Funcs = template.FuncMap{
	"json": func(v any) string {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(v)
		return strings.TrimSpace(buf.String())
	},
	"split":    func(s, sep any) []string { return strings.Split(str(s), str(sep)) },
	"join":     func(elems any, sep any) string { return strings.Join(strs(elems), str(sep)) },
	"title":    func(s any) string { return Title(str(s)) },
	"lower":    func(s any) string { return strings.ToLower(str(s)) },
	"upper":    func(s any) string { return strings.ToUpper(str(s)) },
	"pad":      func(s any, prefix, suffix int) string { return pad(str(s), prefix, suffix) },
	"truncate": func(s any, n int) string { return truncate(str(s), n) },
}

// str is v as a string for the template functions: a string of any named
// type (Docker's enums: swarm.UpdateOrder, swarm.TaskState), a
// fmt.Stringer, else fmt's %v. Docker's functions take plain strings; with
// the Engine API types' named strings they would refuse {{upper .Status.State}}.
func str(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case fmt.Stringer:
		return s.String()
	case nil:
		return ""
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.String {
		return rv.String()
	}
	return fmt.Sprint(v)
}

// strs is a list of strings of any named type, or of JSON values (a
// template's fallback to the raw JSON gives []any), as strings.
func strs(v any) []string {
	if s, ok := v.([]string); ok {
		return s
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return []string{str(v)}
	}
	out := make([]string, rv.Len())
	for i := range out {
		out[i] = str(rv.Index(i).Interface())
	}
	return out
}

// Title upper-cases the first letter of every word.
func Title(s string) string {
	prev := ' '
	return strings.Map(func(r rune) rune {
		defer func() { prev = r }()
		if unicode.IsSpace(prev) || prev == '-' || prev == '_' {
			return unicode.ToTitle(r)
		}
		return r
	}, s)
}

func pad(s string, prefix, suffix int) string {
	if s == "" {
		return s
	}
	return strings.Repeat(" ", prefix) + s + strings.Repeat(" ", suffix)
}

func truncate(s string, n int) string {
	if len(s) < n {
		return s
	}
	return s[:n]
}
