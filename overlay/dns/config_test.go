package dns

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	content := "# comment\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nnameserver ::1\nnameserver 2001:db8::1\noptions ndots:0\n"
	if err := os.WriteFile(rc, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	c := Config{Resolver: newFake(), ResolvConf: rc}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if c.TTL != 5 || c.ForwardTimeout != 2*time.Second || c.MaxInflight != 64 || c.Log == nil {
		t.Fatalf("defaults: %+v", c)
	}
	if want := []string{"192.0.2.1:53", "[2001:db8::1]:53"}; !slices.Equal(c.Upstreams, want) {
		t.Fatalf("upstreams from resolv.conf: %v, want %v", c.Upstreams, want)
	}

	c = Config{Resolver: newFake(), Upstreams: []string{"192.0.2.1", "192.0.2.2:5353"}, TTL: 3}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"192.0.2.1:53", "192.0.2.2:5353"}; !slices.Equal(c.Upstreams, want) || c.TTL != 3 {
		t.Fatalf("explicit: %+v", c)
	}

	c = Config{Resolver: newFake(), ResolvConf: filepath.Join(t.TempDir(), "missing")}
	if err := c.validate(); err != nil || len(c.Upstreams) != 0 {
		t.Fatalf("missing resolv.conf: %v, %v (want no upstream, no error)", c.Upstreams, err)
	}
}

func TestConfigInvalid(t *testing.T) {
	for name, c := range map[string]Config{
		"no resolver":      {Upstreams: []string{"192.0.2.1"}},
		"ttl over 5":       {Resolver: newFake(), TTL: 6},
		"bad upstream":     {Resolver: newFake(), Upstreams: []string{"dns.example"}},
		"negative timeout": {Resolver: newFake(), ForwardTimeout: -1},
		"negative bound":   {Resolver: newFake(), MaxInflight: -1},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted %+v", name, c)
		}
	}
}
