package logopt

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1": 1, "1024": 1024, "10k": 10000, "10K": 10000, "10kb": 10000, "10m": 10000000, "10MB": 10000000,
		"10MiB": 10000000, "1g": 1000000000, "1.5m": 1500000, "2 m": 2000000,
	} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "m", "10x", "10mbb", "NaN", "Inf", "1e30", "99999999999999999999p", "0.1"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		} else if !strings.Contains(err.Error(), "max-size") {
			t.Errorf("ParseSize(%q): %v does not name max-size", in, err)
		}
	}
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		driver string
		opts   map[string]string
		want   Limits
		err    string
	}{
		{driver: "json-file", opts: map[string]string{"max-size": "10m", "max-file": "3"}, want: Limits{10000000, 3}},
		{driver: "local", opts: map[string]string{"max-file": "1"}, want: Limits{0, 1}},
		{driver: "", opts: map[string]string{"max-size": "1k"}, want: Limits{1000, 0}},
		{driver: "none"},
		{driver: "none", opts: map[string]string{"max-size": "1k"}, err: `log driver "none" takes no options (got max-size)`},
		{driver: "syslog", err: `log driver "syslog" is not supported: use "json-file", "local" or "none"`},
		{driver: "json-file", opts: map[string]string{"max-file": "0"}, err: `invalid max-file "0": want a number of files from 1 to 100`},
		{driver: "json-file", opts: map[string]string{"max-file": "101"}, err: `invalid max-file "101"`},
		{driver: "json-file", opts: map[string]string{"max-file": "x"}, err: `invalid max-file "x"`},
		{driver: "json-file", opts: map[string]string{"max-size": "-5"}, err: `invalid max-size "-5": want a positive size`},
		{driver: "json-file", opts: map[string]string{"compress": "true"}, err: `log option "compress" of json-file is not supported by shoal`},
		{driver: "local", opts: map[string]string{"colour": "red"}, err: `unknown log opt "colour" for local log driver`},
	} {
		got, err := Parse(c.driver, c.opts)
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("Parse(%q, %v) = %+v, %v; want %+v", c.driver, c.opts, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("Parse(%q, %v) error %v, want %q", c.driver, c.opts, err, c.err)
		}
	}
}

func TestResolve(t *testing.T) {
	node := Limits{MaxSize: 5000, MaxFile: 7}
	if d, l, err := Resolve("json-file", map[string]string{"max-size": "1k"}, node); d || err != nil || l != (Limits{1000, 7}) {
		t.Errorf("service max-size over node defaults: %v %+v %v", d, l, err)
	}
	if d, l, err := Resolve("", nil, Limits{}); d || err != nil || l != (Limits{DefaultMaxSize, DefaultMaxFile}) {
		t.Errorf("defaults: %v %+v %v", d, l, err)
	}
	if d, _, err := Resolve("none", nil, node); !d || err != nil {
		t.Errorf("none: %v %v", d, err)
	}
	if _, _, err := Resolve("gelf", nil, node); err == nil {
		t.Error("gelf resolved")
	}
}

func TestNodeDefaults(t *testing.T) {
	l, err := NodeDefaults(nil)
	if err != nil || l != (Limits{10 << 20, 3}) || l.Budget() != 30<<20 {
		t.Errorf("NodeDefaults() = %+v, %v", l, err)
	}
	if l, err = NodeDefaults([]string{"max-size=1m", "max-file=10"}); err != nil || l != (Limits{1000000, 10}) {
		t.Errorf("NodeDefaults = %+v, %v", l, err)
	}
	for _, bad := range [][]string{{"max-size"}, {"=1"}, {"max-size=big"}, {"tag=x"}} {
		if _, err := NodeDefaults(bad); err == nil {
			t.Errorf("NodeDefaults(%q) accepted", bad)
		}
	}
}
