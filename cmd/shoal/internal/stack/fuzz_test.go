package stack

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// FuzzLoadAndConvert feeds one stack file through the loader and the
// converter. Oracles: no panic; input over MaxFileSize is refused; a file
// that loads and converts round-trips: what `stack config` prints loads
// back (uninterpolated) to the same plan.
func FuzzLoadAndConvert(f *testing.F) {
	for _, path := range []string{"testdata/full/app.yml", "testdata/full/override.yml", "../../../../examples/app/app.yml"} {
		if data, err := os.ReadFile(path); err == nil {
			f.Add(data)
		}
	}
	for _, tc := range errorCases {
		f.Add([]byte(tc.yaml))
	}
	f.Add([]byte(billionLaughs(3)))
	f.Add([]byte("x-a: &a\n  b: *a\n"))
	env := []string{"API_KEY=k", "REGION=r", "WEB_REPLICAS=2", "API_TAG=1"}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Load(context.Background(), LoadOptions{Files: []string{"-"}, Cwd: dir, Stack: "s", Environ: env, Stdin: bytes.NewReader(data)})
		if len(data) > MaxFileSize && err == nil {
			t.Fatalf("%d bytes accepted", len(data))
		}
		if err != nil {
			return
		}
		p, err := l.Convert()
		if err != nil {
			return
		}
		out, err := l.MarshalYAML()
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		l2, err := Load(context.Background(), LoadOptions{Files: []string{"-"}, Cwd: dir, Stack: "s", Environ: env,
			Stdin: bytes.NewReader(out), SkipInterpolation: true})
		if err != nil {
			t.Fatalf("reloading what stack config prints failed: %v\n--- input\n%s\n--- printed\n%s", err, data, out)
		}
		p2, err := l2.Convert()
		if err != nil {
			t.Fatalf("reconverting failed: %v\n--- printed\n%s", err, out)
		}
		if a, b := render(t, p), render(t, p2); a != b {
			t.Fatalf("round trip changed the plan:\n%s\n---\n%s\n--- printed\n%s", a, b, out)
		}
		if strings.Contains(string(out), "\x00") {
			t.Fatal("NUL in output")
		}
	})
}
