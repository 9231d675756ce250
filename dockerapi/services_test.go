package dockerapi

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// TestServiceRequestErrors: what the handlers refuse before calling the
// manager, with docker's status and a message that says what to fix.
func TestServiceRequestErrors(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{"GET", `/v1.41/services?filters={"nope":{"x":true}}`, "", 400, "invalid filter 'nope'"},
		{"GET", `/v1.41/services?filters={"mode":["sometimes"]}`, "", 400, "invalid filter 'mode=sometimes'"},
		{"GET", `/v1.41/tasks?filters={"runtime":["container"]}`, "", 400, "invalid filter 'runtime'"},
		{"GET", `/v1.41/tasks?filters={"desired-state":["paused"]}`, "", 400, "invalid filter 'desired-state=paused'"},
		{"POST", "/v1.41/services/create", `{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"busybox"}},"Bogus":1}`, 400, `unknown field "Bogus"`},
		{"POST", "/v1.41/services/create", `{"Name":"web","Mode":{"Replicated":{"Replicas":"two"}}}`, 400, "Mode.Replicated.Replicas"},
		{"POST", "/v1.41/services/web/update", `{}`, 400, "invalid version"},
		{"POST", "/v1.41/services/web/update?version=3&rollback=next", `{}`, 400, `invalid rollback "next"`},
		{"GET", "/v1.41/services/web/logs", "", 400, "you must choose at least one stream"},
		{"GET", "/v1.41/distribution/" + strings.Repeat("A", 3) + "/json", "", 400, "invalid image reference"},
	} {
		code, h, body := e.do(c.method, c.path, c.body)
		if m := e.message(h, body); code != c.code || !strings.Contains(m, c.msg) {
			t.Errorf("%s %s: %d %q, want %d %q", c.method, c.path, code, m, c.code, c.msg)
		}
	}
}

func TestRegistryAuthWarnings(t *testing.T) {
	for h, want := range map[string]int{
		"":     0,
		"e30=": 0, // {}: what the CLI sends without a login
		"eyJ1c2VybmFtZSI6InUiLCJwYXNzd29yZCI6InAifQ==": 1, // {"username":"u","password":"p"}
	} {
		r := httptest.NewRequest("POST", "/services/create", nil)
		if h != "" {
			r.Header.Set("X-Registry-Auth", h)
		}
		if got := registryAuthWarnings(r); len(got) != want {
			t.Errorf("X-Registry-Auth %q: %q", h, got)
		}
	}
}
