package gossip

import (
	"slices"
	"strings"
	"testing"
)

func TestEntryPortsRoundTrip(t *testing.T) {
	e := Entry{Network: "ing", Key: "t1", Owner: "n1", Generation: 1, Version: 2, IP: "10.255.0.5",
		Ports: []Port{{Proto: "tcp", Published: 8080, Target: 80}, {Proto: "udp", Published: 53, Target: 5353, Masquerade: true}}}
	b := encodeEntry(&e)
	got, err := decodeEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Ports, e.Ports) || !got.sameContent(&e) {
		t.Fatalf("decoded %+v, want %+v", got, e)
	}
	c := e.clone()
	c.Ports[0].Target = 81
	if e.Ports[0].Target != 80 {
		t.Fatal("clone shares Ports")
	}
	if c.sameContent(&e) {
		t.Fatal("a changed port is the same content")
	}
	// Compact: no mode or masquerade keys when unset.
	if s := string(b); !strings.Contains(s, `"pt":[{"p":"tcp","o":8080,"t":80},`) {
		t.Fatalf("wire form %s", s)
	}
	none := Entry{Network: "n", Key: "k", Owner: "o", Generation: 1}
	if s := string(encodeEntry(&none)); strings.Contains(s, "pt") {
		t.Fatalf("an entry without ports carries %s", s)
	}
}
