package stack

import (
	"fmt"
	"strings"
	"testing"
)

// logging becomes the task template's log driver, as with docker stack
// deploy.
func TestLogging(t *testing.T) {
	dir := writeFiles(t, map[string]string{"app.yml": `
services:
  web:
    image: nginx
    logging:
      driver: json-file
      options:
        max-size: 10m
        max-file: "3"
  quiet:
    image: nginx
    logging:
      driver: none
  opts:
    image: nginx
    logging:
      options:
        max-file: "2"
  plain:
    image: nginx
`})
	_, p, err := planIn(dir, nil, "app.yml")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range p.Services {
		if d := s.Spec.Task.LogDriver; d != nil {
			got[s.Key] = fmt.Sprintf("%q %v", d.Name, d.Options)
		} else {
			got[s.Key] = "<nil>"
		}
	}
	want := map[string]string{
		"web":   `"json-file" map[max-file:3 max-size:10m]`,
		"quiet": `"none" map[]`,
		"opts":  `"" map[max-file:2]`,
		"plain": "<nil>",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("log drivers %v, want %v", got, want)
	}
}

// A driver or option shoal does not have fails the deploy with the file,
// the service, the key and what is accepted.
func TestLoggingRefused(t *testing.T) {
	for body, want := range map[string]string{
		"driver: syslog": `service "web": logging: log driver "syslog" is not supported: use "json-file", "local" or "none"`,
		"driver: json-file\n      options: {max-size: big}": `service "web": logging: invalid max-size "big"`,
		"driver: local\n      options: {tag: x}":            `service "web": logging: log option "tag" of local is not supported by shoal`,
	} {
		dir := writeFiles(t, map[string]string{"app.yml": "services:\n  web:\n    image: nginx\n    logging:\n      " + body + "\n"})
		_, _, err := planIn(dir, nil, "app.yml")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "app.yml") {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
}
