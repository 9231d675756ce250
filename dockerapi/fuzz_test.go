package dockerapi

import (
	"strings"
	"testing"

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
