package opts

import (
	"encoding/csv"
	"fmt"
	"strings"
)

// field is one key=value (or bare key) of a CSV flag value.
type field struct {
	key, value string
	hasValue   bool
}

// parseCSV splits "a=1,b=2,flag" into fields, honouring CSV quoting.
func parseCSV(value string) ([]field, error) {
	r := csv.NewReader(strings.NewReader(value))
	parts, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("invalid value %q: %w", value, err)
	}
	fields := make([]field, 0, len(parts))
	for _, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		fields = append(fields, field{key: strings.ToLower(strings.TrimSpace(k)), value: v, hasValue: ok})
	}
	return fields, nil
}

// parseBool reads a CSV flag's boolean: a bare key means true.
func parseBool(f field) (bool, error) {
	if !f.hasValue {
		return true, nil
	}
	switch strings.ToLower(f.value) {
	case "1", "true", "yes":
		return true, nil
	case "0", "false", "no":
		return false, nil
	}
	return false, fmt.Errorf("invalid value for %s: %q (expected true or false)", f.key, f.value)
}
