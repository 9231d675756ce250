package controlapi

import (
	"context"
	"regexp"
	"testing"

	api "github.com/shoal-project/shoal/proto"
)

// A service created without a name gets an adjective_scientist name drawn
// from its ID; a spec with a name keeps it.
func TestCreateServiceWithoutNameIsNamed(t *testing.T) {
	s, _ := newTestServer(t)
	ids := []string{"id0000000000000000000000a", "id0000000000000000000000b"}
	s.newID = func() string { id := ids[0]; ids = ids[1:]; return id }
	spec := validSpec()
	spec.Annotations.Name = ""
	resp, err := s.CreateService(context.Background(), &api.CreateServiceRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	name := resp.GetService().GetSpec().GetAnnotations().GetName()
	if !regexp.MustCompile(`^[a-z]+_[a-z]+$`).MatchString(name) {
		t.Fatalf("generated name %q", name)
	}
	if spec.GetAnnotations().GetName() != "" {
		t.Error("the caller's spec was changed")
	}
	if got := withGeneratedName(spec, "id0000000000000000000000a").GetAnnotations().GetName(); got != name {
		t.Errorf("name %q for the same ID, want %q", got, name)
	}
	named := validSpec()
	if got := withGeneratedName(named, "x"); got != named {
		t.Error("a named spec was copied or renamed")
	}
}
