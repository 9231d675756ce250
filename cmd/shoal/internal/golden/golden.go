// Package golden compares test output with files under testdata/ and rewrites
// them when tests run with -update:
//
//	go test ./cmd/shoal/... -update
//
// Every test package of the CLI imports this package (at least through
// golden.Assert), so that the -update flag is defined in each test binary.
package golden

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// Assert checks that got equals testdata/<name>, or writes it there with -update.
func Assert(t testing.TB, got, name string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if string(want) != got {
		t.Errorf("output differs from %s (run with -update to accept):\n%s", path, diff(string(want), got))
	}
}

// diff shows the first differing lines of want and got.
func diff(want, got string) string {
	wl := strings.Split(want, "\n")
	gl := strings.Split(got, "\n")
	var b strings.Builder
	n := max(len(wl), len(gl))
	shown := 0
	for i := 0; i < n && shown < 20; i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			b.WriteString("line ")
			b.WriteString(itoa(i + 1))
			b.WriteString(":\n  want: ")
			b.WriteString(quote(w))
			b.WriteString("\n  got:  ")
			b.WriteString(quote(g))
			b.WriteString("\n")
			shown++
		}
	}
	b.WriteString("--- got (full) ---\n")
	b.WriteString(got)
	return b.String()
}

func quote(s string) string { return "`" + strings.ReplaceAll(s, "\x1b", "^[") + "`" }

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var d []byte
	for i > 0 {
		d = append([]byte{byte('0' + i%10)}, d...)
		i /= 10
	}
	return string(d)
}
