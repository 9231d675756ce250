package events

import (
	"testing"

	"github.com/moby/moby/api/types/events"
)

// TestFilterStackLabels: a stack label stored under shoal's key
// (io.shoal.stack.namespace, as the gateway stores Docker's) matches a
// filter under either key: docker's and shoal's.
func TestFilterStackLabels(t *testing.T) {
	e := Event{Msg: events.Message{Type: events.ServiceEventType, Action: events.ActionUpdate, Scope: Scope,
		Actor: events.Actor{ID: "s1", Attributes: map[string]string{"name": "app_web"}}},
		Labels: map[string]string{"io.shoal.stack.namespace": "app", "tier": "front"}}
	for f, want := range map[string]bool{
		"com.docker.stack.namespace=app":   true,
		"io.shoal.stack.namespace=app":     true,
		"com.docker.stack.namespace":       true,
		"com.docker.stack.namespace=other": false,
		"tier=front":                       true,
	} {
		if got := (Filter{"label": {f}}).Match(e); got != want {
			t.Errorf("label=%s: %v, want %v", f, got, want)
		}
	}
	if (Filter{"label": {"com.docker.stack.namespace=app", "tier=back"}}).Match(e) {
		t.Error("label filters are not all required")
	}
}
