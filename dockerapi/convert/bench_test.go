package convert

import (
	"encoding/json"
	"io"
	"testing"

	"github.com/moby/moby/api/types/swarm"

	api "github.com/shoal-project/shoal/proto"
)

// BenchmarkServiceListJSON is the conversion and encoding share of
// GET /services for 1,000 fully specified services.
func BenchmarkServiceListJSON(b *testing.B) {
	svcs := make([]*api.Service, 1000)
	for i := range svcs {
		s := fullSpec()
		svcs[i] = &api.Service{Id: "s", Meta: &api.Meta{Version: uint64(i)}, Spec: s, PreviousSpec: fullSpec(),
			Endpoint: &api.Endpoint{Spec: s.Endpoint, Ports: s.Endpoint.Ports, VirtualIps: []*api.Endpoint_VirtualIP{{NetworkId: "n", Addr: "10.0.0.2/24"}}}}
	}
	b.ReportAllocs()
	for b.Loop() {
		out := make([]swarm.Service, 0, len(svcs))
		for _, s := range svcs {
			out = append(out, ServiceToMoby(s))
		}
		if err := json.NewEncoder(io.Discard).Encode(out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServiceSpecFromRequest is the decoding and conversion share of
// POST /services/create for the docker CLI's body.
func BenchmarkServiceSpecFromRequest(b *testing.B) {
	body, err := json.Marshal(ServiceSpecToMoby(fullSpec()))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var r ServiceSpecRequest
		if err := strictDecode(body, &r); err != nil {
			b.Fatal(err)
		}
		if _, err := ServiceSpecFromRequest(&r); err != nil {
			b.Fatal(err)
		}
	}
}
