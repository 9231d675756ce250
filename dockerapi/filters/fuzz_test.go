package filters

import (
	"encoding/json"
	"sort"
	"testing"
)

// FuzzParse: Parse never panics, and whatever it accepts is well formed:
// allowed keys only, no empty value lists, values sorted and unique, and
// the result survives a round trip through the list form.
func FuzzParse(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"name":{"web":true}}`, `{"name":["web"]}`, `{"label":{"a=b":true,"c":false}}`,
		`{"name":"x"}`, `{"name":[1]}`, `[]`, `null`, `{"name":null}`, `{"id":["a","a","b"]}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		a, err := Parse(raw, "name", "label", "id")
		if err != nil {
			return
		}
		for k, vs := range a {
			if k != "name" && k != "label" && k != "id" {
				t.Fatalf("key %q accepted", k)
			}
			if len(vs) == 0 {
				t.Fatalf("key %q without values", k)
			}
			if !sort.StringsAreSorted(vs) {
				t.Fatalf("values of %q not sorted: %q", k, vs)
			}
			for i := 1; i < len(vs); i++ {
				if vs[i] == vs[i-1] {
					t.Fatalf("duplicate value %q", vs[i])
				}
			}
		}
		b, err := json.Marshal(map[string][]string(a))
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(string(b), "name", "label", "id")
		if err != nil || len(again) != len(a) {
			t.Fatalf("round trip of %s: %v %v", b, again, err)
		}
	})
}
