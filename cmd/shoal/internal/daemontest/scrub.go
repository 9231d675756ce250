package daemontest

import "regexp"

var (
	tokenRE = regexp.MustCompile(`SHTKN-1-[0-9a-z]+-[0-9a-z]+`)
	keyRE   = regexp.MustCompile(`SHKEY-1-[A-Za-z0-9+/]{43}`)
)

// Scrub hides the join tokens and unlock keys the managers made during a
// test (pki draws them from crypto/rand) so that golden files stay
// stable: each becomes <token N> or <unlock key N>, numbered in order of
// appearance in text. The fixture's own tokens and UnlockKey stay.
func Scrub(text string) string {
	for _, r := range []struct {
		re    *regexp.Regexp
		name  string
		known []string
	}{{tokenRE, "token", []string{WorkerToken, ManagerToken}}, {keyRE, "unlock key", []string{UnlockKey}}} {
		seen := map[string]string{}
		text = r.re.ReplaceAllStringFunc(text, func(s string) string {
			for _, k := range r.known {
				if s == k {
					return s
				}
			}
			if _, ok := seen[s]; !ok {
				seen[s] = "<" + r.name + " " + string(rune('1'+len(seen))) + ">"
			}
			return seen[s]
		})
	}
	return text
}
