package formatter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"text/template"
)

// WriteDockerJSON prints objs as the docker CLI's `inspect` does: one JSON
// array, indented with four spaces when indent is set (the default
// output), on one line otherwise (--format json), then a newline. An empty
// list is "[]". Like docker's, the encoding escapes <, > and & (it is
// encoding/json's Marshal).
func WriteDockerJSON[T any](out io.Writer, objs []T, indent bool) error {
	if len(objs) == 0 {
		_, err := io.WriteString(out, "[]\n")
		return err
	}
	var (
		b   []byte
		err error
	)
	if indent {
		b, err = json.MarshalIndent(objs, "", "    ")
	} else {
		b, err = json.Marshal(objs)
	}
	if err != nil {
		return fmt.Errorf("encoding the inspect output: %w", err)
	}
	_, err = out.Write(append(b, '\n'))
	return err
}

// ExecuteDocker runs an inspect template on obj as the docker CLI does: on
// the value first; if that fails, on the value's JSON decoded into maps
// (numbers kept as written) with missing keys an error. The error names
// the template's failure as docker words it.
func ExecuteDocker(tmpl *template.Template, obj any) ([]byte, error) {
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, obj); err == nil {
		return buf.Bytes(), nil
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("unable to read inspect data: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("unable to read inspect data: %w", err)
	}
	buf.Reset()
	strict, err := tmpl.Clone()
	if err != nil {
		return nil, err
	}
	if err := strict.Option("missingkey=error").Execute(&buf, m); err != nil {
		return nil, fmt.Errorf("template parsing error: %w", err)
	}
	return buf.Bytes(), nil
}
