package events

import (
	"strconv"
	"strings"
	"time"

	"github.com/shoal-project/shoal/errdefs"
)

// layouts are the absolute times docker accepts for --since and --until;
// the ones without a zone are local time.
var layouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04:05",
	"2006-01-02T15:04",
	"2006-01-02T15",
	"2006-01-02",
}

// ParseTime reads a since/until value as docker does: Unix seconds with an
// optional fraction ("1796191401", "1796191401.5"; what the docker CLI
// sends), a duration before now ("10m", "1h30m"), or an RFC 3339 date and
// time with or without a zone or seconds ("2026-12-02T18:00:00Z",
// "2026-12-02"). An empty value is the zero time.
func ParseTime(what, value string, now time.Time) (time.Time, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(value); err == nil {
		return now.Add(-d), nil
	}
	if t, ok := unixTime(value); ok {
		return t, nil
	}
	for _, l := range layouts {
		if t, err := time.ParseInLocation(l, value, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errdefs.InvalidArgument("invalid %s %q: give Unix seconds (1796191401.5), a duration before now (10m) or an RFC 3339 time (2026-12-02T18:00:00Z)", what, value)
}

// unixTime reads "seconds[.fraction]".
func unixTime(value string) (time.Time, bool) {
	secs, frac, hasFrac := strings.Cut(value, ".")
	s, err := strconv.ParseInt(secs, 10, 64)
	if err != nil || s < 0 {
		return time.Time{}, false
	}
	var ns int64
	if hasFrac {
		if frac == "" || len(frac) > 9 {
			return time.Time{}, false
		}
		n, err := strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		if err != nil || n < 0 {
			return time.Time{}, false
		}
		ns = n
	}
	return time.Unix(s, ns), true
}

// FormatUnix writes t as the docker CLI sends since and until:
// "seconds.nanoseconds".
func FormatUnix(t time.Time) string {
	return strconv.FormatInt(t.Unix(), 10) + "." + strconv.FormatInt(int64(t.Nanosecond())+1e9, 10)[1:]
}
