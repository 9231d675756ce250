package formatter

import (
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	units "github.com/docker/go-units"
)

// TruncateID shortens an ID to the 12 characters lists show.
func TruncateID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Ellipsis cuts s to at most n characters, ending in "…" when cut.
func Ellipsis(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 1 {
		return "…"
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// HumanAgo says how long ago t was, in Docker's words: "8 seconds ago",
// "about a minute ago", "less than a second ago".
func HumanAgo(now, t time.Time) string {
	return strings.ToLower(units.HumanDuration(now.Sub(t))) + " ago"
}

// PrettyState writes an enum name as a word: RUNNING -> Running,
// ON_FAILURE -> On-failure.
func PrettyState(s string) string {
	s = strings.ToLower(strings.ReplaceAll(s, "_", "-"))
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// NaturalLess orders strings with embedded numbers by their value:
// node2 < node10, web.9 < web.10.
func NaturalLess(a, b string) bool {
	for a != "" && b != "" {
		ad, bd := isDigit(a[0]), isDigit(b[0])
		switch {
		case ad && bd:
			an, arest := digits(a)
			bn, brest := digits(b)
			at, bt := strings.TrimLeft(an, "0"), strings.TrimLeft(bn, "0")
			if len(at) != len(bt) {
				return len(at) < len(bt)
			}
			if at != bt {
				return at < bt
			}
			if len(an) != len(bn) {
				return len(an) < len(bn)
			}
			a, b = arest, brest
		case a[0] != b[0]:
			return a[0] < b[0]
		default:
			a, b = a[1:], b[1:]
		}
	}
	return len(a) < len(b)
}

// SortNatural sorts items by key in NaturalLess order, keeping the order of
// equal keys.
func SortNatural[T any](items []T, key func(T) string) {
	sort.SliceStable(items, func(i, j int) bool { return NaturalLess(key(items[i]), key(items[j])) })
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func digits(s string) (string, string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// DockerPretty is how docker's pretty templates show a value: its first
// letter upper-cased and the rest lower-cased ("active" -> "Active",
// "2025-01-01 12:00:00 +0000 UTC" -> "2025-01-01 12:00:00 +0000 utc").
func DockerPretty(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + strings.ToLower(s[1:])
}
