package hostinfo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMemTotal(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, text string
		want       int64
		err        string
	}{
		{"ok", "MemFree:  10 kB\nMemTotal:       24576000 kB\n", 24576000 * 1024, ""},
		{"missing", "MemFree: 10 kB\n", 0, "no MemTotal line"},
		{"garbage", "MemTotal: lots kB\n", 0, `MemTotal "lots"`},
	} {
		p := filepath.Join(dir, c.name)
		if err := os.WriteFile(p, []byte(c.text), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := MemTotal(p)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %d, %v; want %d", c.name, got, err, c.want)
		}
	}
	if _, err := MemTotal(filepath.Join(dir, "absent")); err == nil {
		t.Error("a missing file gave no error")
	}
	if v, err := MemTotal(Meminfo); err != nil || v <= 0 {
		t.Errorf("%s: %d, %v", Meminfo, v, err)
	}
}
