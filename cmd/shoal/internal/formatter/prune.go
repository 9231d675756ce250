package formatter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// prune re-encodes the protojson form of a message compactly, keeping the
// order of keys and dropping the fields whose value is null, "", [] or {}.
// Map entries are user data and are kept as they are.
func prune(doc []byte, md protoreflect.MessageDescriptor) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var buf bytes.Buffer
	if _, err := pruneValue(dec, &buf, md); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// pruneValue copies one value to buf and tells whether it is empty. md is
// the message the value encodes, nil for anything else (kept verbatim).
func pruneValue(dec *json.Decoder, buf *bytes.Buffer, md protoreflect.MessageDescriptor) (bool, error) {
	tok, err := dec.Token()
	if err != nil {
		return false, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return pruneObject(dec, buf, md)
		case '[':
			return pruneArray(dec, buf, md)
		}
		return false, fmt.Errorf("unexpected %v", t)
	case nil:
		buf.WriteString("null")
		return true, nil
	case string:
		writeJSON(buf, t)
		return t == "", nil
	default:
		writeJSON(buf, t)
		return false, nil
	}
}

func pruneObject(dec *json.Decoder, buf *bytes.Buffer, md protoreflect.MessageDescriptor) (bool, error) {
	buf.WriteByte('{')
	n := 0
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false, err
		}
		key, _ := tok.(string)
		var inner protoreflect.MessageDescriptor
		if md != nil {
			if fd := md.Fields().ByJSONName(key); fd != nil && !fd.IsMap() && fd.Message() != nil {
				inner = fd.Message()
			}
		}
		var val bytes.Buffer
		empty, err := pruneValue(dec, &val, inner)
		if err != nil {
			return false, err
		}
		if empty && md != nil {
			continue
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		writeJSON(buf, key)
		buf.WriteByte(':')
		buf.Write(val.Bytes())
		n++
	}
	if _, err := dec.Token(); err != nil && err != io.EOF {
		return false, err
	}
	buf.WriteByte('}')
	return n == 0, nil
}

func pruneArray(dec *json.Decoder, buf *bytes.Buffer, md protoreflect.MessageDescriptor) (bool, error) {
	buf.WriteByte('[')
	n := 0
	for dec.More() {
		if n > 0 {
			buf.WriteByte(',')
		}
		if _, err := pruneValue(dec, buf, md); err != nil {
			return false, err
		}
		n++
	}
	if _, err := dec.Token(); err != nil && err != io.EOF {
		return false, err
	}
	buf.WriteByte(']')
	return n == 0, nil
}

func writeJSON(buf *bytes.Buffer, v any) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	buf.Truncate(buf.Len() - 1) // Encode's newline
}
