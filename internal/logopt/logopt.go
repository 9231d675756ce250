// Package logopt is the one place that knows the log drivers and options
// shoal accepts, so the CLI, the managers' Control API and the worker
// agree: Docker's names and syntax (`--log-driver json-file --log-opt
// max-size=10m --log-opt max-file=3`), a bounded default.
//
// Drivers: json-file and local both mean shoal's own rotating file driver
// (records in the CRI format, read by `service logs`); none discards the
// output, and `service logs` says so. An empty name means the node's
// default, which is the file driver. Options: max-size (Docker's sizes,
// parsed as Docker's json-file parses them: decimal units, "10m" is
// 10,000,000 bytes, "10MiB" too) and max-file (1 to MaxMaxFile). Other
// keys Docker's json-file and local drivers know (compress, labels, env,
// tag…) are refused as unsupported; unknown keys as unknown.
//
// A service's options override the node's defaults key by key; the node's
// defaults (shoald --log-opt) are DefaultMaxSize × DefaultMaxFile unless
// set. Unlike Docker's, shoal's default is bounded.
//
// The package is pure: no I/O, safe for concurrent use.
package logopt

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	units "github.com/docker/go-units"
)

// Driver names.
const (
	JSONFile = "json-file"
	Local    = "local"
	None     = "none"
)

// Option keys.
const (
	MaxSize = "max-size"
	MaxFile = "max-file"
)

// Defaults and bounds.
const (
	// DefaultMaxSize is the node's default size of a log file before it
	// rotates: 10 MiB.
	DefaultMaxSize = 10 << 20
	// DefaultMaxFile is the node's default number of files kept per task.
	DefaultMaxFile = 3
	// MaxMaxFile bounds max-file: each rotation renames every kept file,
	// and a reader opens them all at once.
	MaxMaxFile = 100
)

// Drivers lists the driver names accepted, for messages.
const Drivers = `"json-file", "local" or "none"`

// dockerOnly are option keys Docker's json-file or local driver accepts
// that shoal does not implement.
var dockerOnly = map[string]bool{
	"compress": true, "labels": true, "labels-regex": true, "env": true, "env-regex": true, "tag": true,
}

// Limits bound one task's log: files of at most MaxSize bytes (a file holds
// more only when one record is larger), MaxFile of them. Zero fields are
// unset (the node's default applies).
type Limits struct {
	MaxSize int64
	MaxFile int
}

// Budget is the most disk the log takes: MaxSize × MaxFile (plus, at
// worst, one record per file beyond MaxSize when records are larger).
func (l Limits) Budget() int64 { return l.MaxSize * int64(l.MaxFile) }

// ParseSize reads a max-size as Docker's json-file driver does
// (go-units' FromHumanSize: "1024", "10k", "10m", "1.5g", "10MB"), and
// refuses what is not positive.
func ParseSize(s string) (int64, error) {
	n, err := units.FromHumanSize(s)
	if err != nil || n <= 0 || n == math.MaxInt64 {
		return 0, fmt.Errorf("invalid %s %q: want a positive size such as 10k, 10m or 1g", MaxSize, s)
	}
	return n, nil
}

// ParseMaxFile reads a max-file: a whole number from 1 to MaxMaxFile.
func ParseMaxFile(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxMaxFile {
		return 0, fmt.Errorf("invalid %s %q: want a number of files from 1 to %d", MaxFile, s, MaxMaxFile)
	}
	return n, nil
}

// Parse checks a driver and its options and returns the limits they set.
// The error says what is wrong and what is accepted.
func Parse(driver string, opts map[string]string) (Limits, error) {
	var l Limits
	switch driver {
	case "", JSONFile, Local:
	case None:
		if len(opts) > 0 {
			return l, fmt.Errorf("log driver %q takes no options (got %s)", None, strings.Join(sortedKeys(opts), ", "))
		}
		return l, nil
	default:
		return l, fmt.Errorf("log driver %q is not supported: use %s", driver, Drivers)
	}
	name := driver
	if name == "" {
		name = JSONFile
	}
	for _, k := range sortedKeys(opts) {
		v := opts[k]
		var err error
		switch {
		case k == MaxSize:
			l.MaxSize, err = ParseSize(v)
		case k == MaxFile:
			l.MaxFile, err = ParseMaxFile(v)
		case dockerOnly[k]:
			err = fmt.Errorf("log option %q of %s is not supported by shoal: use %s and %s", k, name, MaxSize, MaxFile)
		default:
			err = fmt.Errorf("unknown log opt %q for %s log driver: use %s and %s", k, name, MaxSize, MaxFile)
		}
		if err != nil {
			return Limits{}, err
		}
	}
	return l, nil
}

// Resolve returns what a task's log uses: discard for driver none, else
// the limits of its options over the node's defaults, key by key.
func Resolve(driver string, opts map[string]string, node Limits) (discard bool, l Limits, err error) {
	if driver == None {
		_, err := Parse(driver, opts)
		return true, Limits{}, err
	}
	l, err = Parse(driver, opts)
	if err != nil {
		return false, Limits{}, err
	}
	if l.MaxSize == 0 {
		l.MaxSize = node.MaxSize
	}
	if l.MaxFile == 0 {
		l.MaxFile = node.MaxFile
	}
	if l.MaxSize == 0 {
		l.MaxSize = DefaultMaxSize
	}
	if l.MaxFile == 0 {
		l.MaxFile = DefaultMaxFile
	}
	return false, l, nil
}

// ParseKV reads "key=value" options, as --log-opt gives them; a key given
// twice keeps its last value.
func ParseKV(kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid log opt %q: want key=value, e.g. %s=10m", kv, MaxSize)
		}
		out[k] = v
	}
	return out, nil
}

// NodeDefaults reads shoald's --log-opt values into the node's limits,
// filling what they leave unset with DefaultMaxSize and DefaultMaxFile.
func NodeDefaults(kvs []string) (Limits, error) {
	opts, err := ParseKV(kvs)
	if err != nil {
		return Limits{}, err
	}
	l, err := Parse(JSONFile, opts)
	if err != nil {
		return Limits{}, err
	}
	_, l, err = Resolve(JSONFile, nil, l)
	return l, err
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
