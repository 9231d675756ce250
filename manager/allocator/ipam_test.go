package allocator

import (
	"net/netip"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

// The pool hands out never-used addresses first (skipping the network,
// broadcast and gateway addresses), then the least recently freed one
// whose quarantine is over, and says when the next one frees.
func TestPoolOrderAndQuarantine(t *testing.T) {
	p, err := newPool(&api.Network{Id: "n", Spec: &api.NetworkSpec{Annotations: &api.Annotations{Name: "n"}},
		Ipam: []*api.IPAMConfig{{Subnet: "10.0.0.0/29", Gateway: "10.0.0.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if p.size != 5 {
		t.Fatalf("size %d, want 5", p.size)
	}
	t0 := time.Unix(1000, 0)
	q := 5 * time.Second
	var got []string
	for range 5 {
		a, _, ok := p.take("h", t0, q)
		if !ok {
			t.Fatal("exhausted early")
		}
		got = append(got, a.String())
	}
	if want := "[10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5 10.0.0.6]"; fmtList(got) != want {
		t.Fatalf("order %v, want %s", got, want)
	}
	if _, wake, ok := p.take("h", t0, q); ok || !wake.IsZero() {
		t.Fatal("a full pool handed out an address")
	}
	p.release(mustAddr("10.0.0.4"), "h", t0)
	p.release(mustAddr("10.0.0.2"), "h", t0.Add(time.Second))
	if _, wake, ok := p.take("h", t0.Add(4*time.Second), q); ok || !wake.Equal(t0.Add(q)) {
		t.Fatalf("quarantine not honoured (wake %v)", wake)
	}
	if msg := p.exhausted(t0.Add(4*time.Second), t0.Add(q)); msg != "no free address on network n (10.0.0.0/29): all 5 addresses are in use (recently freed ones are quarantined; the next is reusable in 1s)" {
		t.Fatal(msg)
	}
	a, _, ok := p.take("h", t0.Add(6*time.Second), q)
	if !ok || a.String() != "10.0.0.4" {
		t.Fatalf("got %v %v, want the least recently freed 10.0.0.4", a, ok)
	}
	a, _, ok = p.take("h", t0.Add(6*time.Second), q)
	if !ok || a.String() != "10.0.0.2" {
		t.Fatalf("got %v %v, want 10.0.0.2", a, ok)
	}
	if other := p.claim(mustAddr("10.0.0.2"), "x"); other != "h" {
		t.Fatalf("claim of a held address: %q", other)
	}
}

func fmtList(l []string) string {
	s := "["
	for i, v := range l {
		if i > 0 {
			s += " "
		}
		s += v
	}
	return s + "]"
}

func mustAddr(s string) netip.Addr {
	a, _ := parseAddr(s)
	return a
}
