package controlapi

import (
	"hash/fnv"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

// A service created without a name gets one, as Docker's daemon gives
// `docker service create nginx` a name like "eager_turing": an adjective
// and a scientist, picked from the service's ID (so a test that fixes IDs
// fixes names). Two services may draw the same name; the second create
// then fails with "already exists" and the user names it.
var (
	nameAdjectives = []string{"brave", "calm", "eager", "gentle", "happy", "keen", "lucid", "nifty",
		"quiet", "sharp", "steady", "swift", "tender", "vivid", "wise", "zealous"}
	nameScientists = []string{"babbage", "curie", "dijkstra", "euler", "franklin", "gauss", "hopper", "hypatia",
		"kepler", "lamport", "liskov", "lovelace", "noether", "pascal", "ritchie", "turing"}
)

// withGeneratedName returns spec, or a copy of it named after id when it
// has no name.
func withGeneratedName(spec *api.ServiceSpec, id string) *api.ServiceSpec {
	if spec == nil || spec.GetAnnotations().GetName() != "" {
		return spec
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	n := h.Sum32()
	named := proto.Clone(spec).(*api.ServiceSpec)
	if named.Annotations == nil {
		named.Annotations = &api.Annotations{}
	}
	named.Annotations.Name = nameAdjectives[n%uint32(len(nameAdjectives))] + "_" + nameScientists[(n/16)%uint32(len(nameScientists))]
	return named
}

// refText is a user's reference as a not-found message repeats it: bare
// when it is plain ("service web not found", dockerd's words, which
// scripts grep for), quoted by api.Echo when it is empty, long, or holds
// spaces, quotes, backslashes or characters that do not print.
func refText(ref string) string {
	if ref == "" || len(ref) > api.MaxEchoBytes || !utf8.ValidString(ref) {
		return api.Echo(ref)
	}
	for _, r := range ref {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) || r == '"' || r == '\\' {
			return api.Echo(ref)
		}
	}
	return ref
}
