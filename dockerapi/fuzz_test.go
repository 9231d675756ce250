package dockerapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/api/types/swarm"
)

// FuzzDecodeBody: the strict decoder never panics, and every error it
// returns is a 400 with a message that says it is about the body.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{
		`{"ListenAddr":"0.0.0.0:2377","AdvertiseAddr":"10.0.0.1","Spec":{"Labels":null,"Orchestration":{},"Raft":{"ElectionTick":0}},"AutoLockManagers":false,"DefaultAddrPool":[],"SubnetSize":24}`,
		`{"Bogus":1}`, `{"Spec":{"Orchestration":{"TaskHistoryRetentionLimit":"x"}}}`, `{} {}`, ``, `[`, `null`, `{"DefaultAddrPool":["10.0.0.0/8","x"]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var req swarm.InitRequest
		err := decodeJSON(strings.NewReader(body), &req)
		if err == nil {
			return
		}
		code, msg := statusOf(err)
		if code != 400 {
			t.Fatalf("status %d for %q: %s", code, body, msg)
		}
		if !strings.Contains(msg, "request body") {
			t.Fatalf("message %q does not name the body", msg)
		}
	})
}

// FuzzFilters: a filters parameter, whatever it holds, is answered by GET
// /nodes (which also converts role and membership values) with 200 and a
// JSON list or 400 and a message about the filter; never a 500.
func FuzzFilters(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"role":{"manager":true}}`, `{"role":["worker"]}`, `{"membership":{"pending":true}}`,
		`{"role":{"boss":true}}`, `{"name":{"n1":true},"id":["a"]}`, `{"label":{"a=b":true}}`, `{"node.label":["zone"]}`,
		`{bad`, `{"colour":{"red":true}}`, `{"role":5}`, `{"role":"manager"}`, `[]`, `null`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		code, h, body := newEnv(t).do("GET", "/v1.50/nodes?filters="+url.QueryEscape(raw), "")
		switch code {
		case http.StatusOK:
			var nodes []map[string]any
			if err := json.Unmarshal([]byte(body), &nodes); err != nil {
				t.Fatalf("filters %q: 200 with %q: %v", raw, body, err)
			}
		case http.StatusBadRequest:
			if ct := h.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("filters %q: 400 as %q", raw, ct)
			}
			var m struct{ Message string }
			if err := json.Unmarshal([]byte(body), &m); err != nil || !strings.Contains(m.Message, "filter") {
				t.Fatalf("filters %q: 400 %q does not name the filter", raw, body)
			}
		default:
			t.Fatalf("filters %q: %d %s", raw, code, body)
		}
	})
}

// FuzzRegistryAuth: an X-Registry-Auth header never panics the decoding;
// a bad one is a 400 naming the header; a good one survives a round trip
// through the docker CLI's encoding, and service create and update warn
// exactly when it carries credentials (they are not passed on).
func FuzzRegistryAuth(f *testing.F) {
	enc := func(ac registry.AuthConfig) string {
		s, err := authconfig.Encode(ac)
		if err != nil {
			f.Fatal(err)
		}
		return s
	}
	for _, s := range []string{``, `e30=`, enc(registry.AuthConfig{Username: "u", Password: "p", ServerAddress: "127.0.0.1:5000"}),
		enc(registry.AuthConfig{IdentityToken: "tok"}), enc(registry.AuthConfig{}), `not base64!`, `e30`, `eyJ1c2VybmFtZSI6MX0=`,
		base64.URLEncoding.EncodeToString([]byte(`{} {}`)), base64.URLEncoding.EncodeToString([]byte(`[1]`)),
		base64.StdEncoding.EncodeToString([]byte(`{"username":"?>?"}`))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		ac, err := registryAuth(h)
		r := httptest.NewRequest("POST", "/services/create", nil)
		r.Header.Set("X-Registry-Auth", h)
		warned := len(registryAuthWarnings(r)) > 0
		if err != nil {
			code, msg := statusOf(err)
			if code != http.StatusBadRequest || strings.Count(msg, "X-Registry-Auth") != 1 {
				t.Fatalf("header %q: %d %q", h, code, msg)
			}
			if warned {
				t.Fatalf("header %q: a header that does not decode warns of credentials", h)
			}
			return
		}
		creds := ac.Username != "" || ac.Password != "" || ac.Auth != "" || ac.IdentityToken != "" || ac.RegistryToken != ""
		if warned != creds {
			t.Fatalf("header %q (%+v): warned %v", h, ac, warned)
		}
		again, err := registryAuth(enc(*ac))
		if err != nil || *again != *ac {
			t.Fatalf("header %q: round trip %+v → %+v, %v", h, ac, again, err)
		}
	})
}
