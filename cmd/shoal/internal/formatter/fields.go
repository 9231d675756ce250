package formatter

import (
	"bytes"
	"encoding/json"
	"reflect"
)

// marshalRow turns a row into a JSON object of its column methods, so that
// `--format json` and {{json .}} print every column by name.
func marshalRow(row any) ([]byte, error) {
	v := reflect.ValueOf(row)
	t := v.Type()
	fields := map[string]any{}
	for i := 0; i < t.NumMethod(); i++ {
		m := t.Method(i)
		if m.Name == "MarshalJSON" || m.Type.NumIn() != 1 || m.Type.NumOut() != 1 {
			continue
		}
		fields[m.Name] = v.Method(i).Call(nil)[0].Interface()
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(fields); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
