package ids

import (
	"regexp"
	"testing"
)

func TestNewIsWellFormedAndUnique(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-z]{25}$`)
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		id := New()
		if !re.MatchString(id) {
			t.Fatalf("malformed id %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}
