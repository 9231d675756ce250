package opts

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ReadEnvFile reads KEY=VALUE lines from path (# comments and blank lines
// skipped). A bare KEY takes its value from lookup when it is set there.
func ReadEnvFile(path string, lookup func(string) (string, bool)) ([]string, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	content = bytes.TrimPrefix(content, []byte("\xEF\xBB\xBF"))
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(content))
	n := 0
	for sc.Scan() {
		n++
		raw := sc.Text()
		if !utf8.ValidString(raw) {
			return nil, fmt.Errorf("env file %s line %d: invalid UTF-8", path, n)
		}
		line := strings.TrimLeftFunc(raw, unicode.IsSpace)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, hasValue := strings.Cut(line, "=")
		if key == "" {
			return nil, fmt.Errorf("env file %s line %d: no variable name in %q", path, n, raw)
		}
		if strings.ContainsAny(key, " \t") {
			return nil, fmt.Errorf("env file %s line %d: variable '%s' contains whitespaces", path, n, strings.TrimSpace(key))
		}
		if hasValue {
			lines = append(lines, key+"="+value)
			continue
		}
		if v, ok := lookup(key); ok {
			lines = append(lines, key+"="+v)
		} else {
			lines = append(lines, key)
		}
	}
	return lines, sc.Err()
}
