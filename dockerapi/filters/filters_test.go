package filters

import (
	"errors"
	"reflect"
	"testing"
)

func TestParseBothForms(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want Args
	}{
		{``, Args{}},
		{`{}`, Args{}},
		{`{"name":{"web":true}}`, Args{"name": {"web"}}},
		{`{"name":["web"]}`, Args{"name": {"web"}}},
		{`{"name":["web","api","web"]}`, Args{"name": {"api", "web"}}},
		{`{"name":{"web":true,"off":false}}`, Args{"name": {"web"}}},
		{`{"label":{"com.docker.stack.namespace":true},"name":["x"]}`, Args{"label": {"com.docker.stack.namespace"}, "name": {"x"}}},
		{`{"name":[]}`, Args{}},
		{`{"name":"web"}`, Args{"name": {"web"}}},
	} {
		got, err := Parse(tc.raw, "name", "label")
		if err != nil {
			t.Errorf("Parse(%s): %v", tc.raw, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Parse(%s) = %v, want %v", tc.raw, got, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	_, err := Parse(`{"bogus":["x"]}`, "name")
	var inv *InvalidFilterError
	if !errors.As(err, &inv) || err.Error() != "invalid filter 'bogus'" {
		t.Fatalf("unknown key: %v", err)
	}
	for _, raw := range []string{`[1]`, `{"name":[1]}`, `{"name":{"a":"b"}}`, `nope`, `{"name":{"a":true}`} {
		_, err := Parse(raw, "name")
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%s) = %v, want a SyntaxError", raw, err)
		}
	}
}

func TestMatchers(t *testing.T) {
	a := Args{"id": {"abc"}, "name": {"^web$", "api("}, "label": {"a", "b=1"}, "up": {"true"}}
	if !a.FuzzyMatch("id", "abcdef") || a.FuzzyMatch("id", "xabc") {
		t.Error("FuzzyMatch")
	}
	if !a.ExactMatch("missing", "x") || a.ExactMatch("id", "abcdef") || !a.ExactMatch("id", "abc") {
		t.Error("ExactMatch")
	}
	if !a.Match("name", "web") || a.Match("name", "webx") || !a.Match("name", "my-api(1)") {
		t.Error("Match")
	}
	if !a.MatchKVList("label", map[string]string{"a": "", "b": "1"}) || a.MatchKVList("label", map[string]string{"a": "", "b": "2"}) || a.MatchKVList("label", map[string]string{"b": "1"}) {
		t.Error("MatchKVList")
	}
	if v, ok, err := a.Bool("up"); !v || !ok || err != nil {
		t.Errorf("Bool: %v %v %v", v, ok, err)
	}
	if _, _, err := (Args{"up": {"maybe"}}).Bool("up"); err == nil {
		t.Error("Bool accepted maybe")
	}
	if _, _, err := (Args{"up": {"true", "false"}}).Bool("up"); err == nil {
		t.Error("Bool accepted true and false")
	}
}
