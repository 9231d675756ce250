package remotes

import (
	"testing"

	api "github.com/shoal-project/shoal/proto"
)

func TestRemotesAvoidAndDownWeightFailedManagers(t *testing.T) {
	r := New([]string{"a:1", "b:1", "c:1"}, 7)
	for range 50 {
		if r.Pick("a:1") == "a:1" {
			t.Fatal("picked the manager to avoid")
		}
	}
	for range 4 {
		r.Failed("b:1")
	}
	counts := map[string]int{}
	for range 3000 {
		counts[r.Pick("")]++
	}
	if counts["b:1"] == 0 || counts["b:1"]*4 > counts["a:1"] {
		t.Errorf("a manager failed 4 times was picked %v", counts)
	}
	r.Replace(nil)
	if got := r.Addrs(); len(got) != 3 {
		t.Errorf("an empty list from a manager replaced the list: %v", got)
	}
	r.Replace([]*api.WeightedPeer{{Peer: &api.Peer{Addr: "d:1"}, Weight: 5}})
	if got := r.Pick("d:1"); got != "d:1" {
		t.Errorf("the only manager was avoided: %q", got)
	}
}
