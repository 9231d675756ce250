package controlapi

import (
	"context"
	"regexp"
	"strings"
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

// Messages that scripts grep for carry dockerd's words: a missing object
// is "<kind> <ref> not found" with a plain ref bare, and a duplicate
// service name "name conflicts with an existing object: service web
// already exists".
func TestNotFoundAndDuplicateWording(t *testing.T) {
	s, _ := newTestServer(t)
	ctx := context.Background()
	if _, err := s.CreateService(ctx, &api.CreateServiceRequest{Spec: validSpec()}); err != nil {
		t.Fatal(err)
	}
	_, err := s.CreateService(ctx, &api.CreateServiceRequest{Spec: validSpec()})
	if err == nil || !strings.Contains(err.Error(), "name conflicts with an existing object: service "+validSpec().GetAnnotations().GetName()+" already exists") {
		t.Errorf("duplicate name: %v", err)
	}
	for ref, want := range map[string]string{
		"nope":      "service nope not found",
		"two words": `service "two words" not found`,
		"a\x1bb":    `service "a\x1bb" not found`,
	} {
		_, err := s.GetService(ctx, &api.GetServiceRequest{ServiceId: ref})
		if err == nil || !strings.HasSuffix(err.Error(), want) {
			t.Errorf("GetService(%q): %v, want %q", ref, err, want)
		}
	}
	if _, err := s.RemoveNode(ctx, &api.RemoveNodeRequest{NodeId: "nope"}); err == nil || !strings.HasSuffix(err.Error(), "node nope not found") {
		t.Errorf("RemoveNode(nope): %v", err)
	}
}
