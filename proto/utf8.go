package api

import (
	"fmt"
	"sort"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Text fields (proto3 strings) must be valid UTF-8: protobuf refuses to
// encode or decode anything else, with an error that names no field. These
// helpers find the field first, so that the error can name it.

// InvalidUTF8 finds the first text field of m that is not valid UTF-8 and
// returns its path ("spec.task.container.env[1]", a map value as
// `spec.annotations.labels["k"]`, a map key as "spec.annotations.labels
// (a key)") and its value. Fields are visited in field-number order.
func InvalidUTF8(m proto.Message) (path, value string, found bool) {
	if m == nil {
		return "", "", false
	}
	return walkMessage(m.ProtoReflect(), "")
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func walkMessage(m protoreflect.Message, prefix string) (string, string, bool) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		name := join(prefix, string(fd.Name()))
		v := m.Get(fd)
		switch {
		case fd.IsMap():
			if p, val, ok := walkMap(fd, v.Map(), name); ok {
				return p, val, true
			}
		case fd.IsList():
			l := v.List()
			for j := 0; j < l.Len(); j++ {
				if p, val, ok := walkValue(fd, l.Get(j), name+"["+strconv.Itoa(j)+"]"); ok {
					return p, val, true
				}
			}
		default:
			if p, val, ok := walkValue(fd, v, name); ok {
				return p, val, true
			}
		}
	}
	return "", "", false
}

func walkValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, path string) (string, string, bool) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if s := v.String(); !utf8.ValidString(s) {
			return path, s, true
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return walkMessage(v.Message(), path)
	}
	return "", "", false
}

func walkMap(fd protoreflect.FieldDescriptor, m protoreflect.Map, path string) (string, string, bool) {
	type entry struct {
		k string
		v protoreflect.Value
	}
	var entries []entry
	m.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		entries = append(entries, entry{k.String(), v})
		return true
	})
	sort.Slice(entries, func(i, j int) bool { return entries[i].k < entries[j].k })
	for _, e := range entries {
		if fd.MapKey().Kind() == protoreflect.StringKind && !utf8.ValidString(e.k) {
			return path + " (a key)", e.k, true
		}
		if p, val, ok := walkValue(fd.MapValue(), e.v, fmt.Sprintf("%s[%q]", path, e.k)); ok {
			return p, val, true
		}
	}
	return "", "", false
}

// InvalidUTF8Wire is InvalidUTF8 for an encoded message of type md that
// protobuf refused to decode. It returns the path of the first text field
// that is not UTF-8, found when there is one; malformed bytes find nothing.
func InvalidUTF8Wire(b []byte, md protoreflect.MessageDescriptor) (path, value string, found bool) {
	return walkWire(b, md, "")
}

func walkWire(b []byte, md protoreflect.MessageDescriptor, prefix string) (string, string, bool) {
	counts := map[protowire.Number]int{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", "", false
		}
		b = b[n:]
		fd := md.Fields().ByNumber(num)
		if fd == nil || typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return "", "", false
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return "", "", false
		}
		b = b[n:]
		name := join(prefix, string(fd.Name()))
		if fd.IsList() {
			name += "[" + strconv.Itoa(counts[num]) + "]"
			counts[num]++
		}
		switch {
		case fd.IsMap():
			if p, val, ok := wireMapEntry(v, fd, name); ok {
				return p, val, true
			}
		case fd.Kind() == protoreflect.StringKind:
			if !utf8.Valid(v) {
				return name, string(v), true
			}
		case fd.Kind() == protoreflect.MessageKind:
			if p, val, ok := walkWire(v, fd.Message(), name); ok {
				return p, val, true
			}
		}
	}
	return "", "", false
}

// wireMapEntry checks one encoded map entry (key = 1, value = 2).
func wireMapEntry(b []byte, fd protoreflect.FieldDescriptor, name string) (string, string, bool) {
	var key []byte
	var val []byte
	hasVal := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", "", false
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return "", "", false
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return "", "", false
		}
		b = b[n:]
		switch num {
		case 1:
			key = v
		case 2:
			val, hasVal = v, true
		}
	}
	if fd.MapKey().Kind() == protoreflect.StringKind && !utf8.Valid(key) {
		return name + " (a key)", string(key), true
	}
	if !hasVal {
		return "", "", false
	}
	path := fmt.Sprintf("%s[%q]", name, key)
	switch fd.MapValue().Kind() {
	case protoreflect.StringKind:
		if !utf8.Valid(val) {
			return path, string(val), true
		}
	case protoreflect.MessageKind:
		return walkWire(val, fd.MapValue().Message(), path)
	}
	return "", "", false
}
