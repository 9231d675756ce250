package events

import (
	"sort"
	"strings"

	"github.com/moby/moby/api/types/events"

	"github.com/shoal-project/shoal/dockerapi/convert"
	"github.com/shoal-project/shoal/errdefs"
)

// FilterKeys are the filter keys GET /events and `shoal events` accept.
var FilterKeys = []string{
	"action", "config", "container", "daemon", "event", "id", "image", "label", "name",
	"network", "node", "plugin", "scope", "secret", "service", "type", "volume",
}

// Filter selects events: values of one key are ORed, keys are ANDed. The
// zero Filter matches every event.
type Filter map[string][]string

// NewFilter checks the keys of parsed filters (as dockerapi/filters gives
// them, or `--filter k=v` collected by key).
func NewFilter(f map[string][]string) (Filter, error) {
	for k := range f {
		if i := sort.SearchStrings(FilterKeys, k); i == len(FilterKeys) || FilterKeys[i] != k {
			return nil, errdefs.InvalidArgument("invalid filter '%s' (events take: %s)", k, strings.Join(FilterKeys, ", "))
		}
	}
	return Filter(f), nil
}

// Match reports whether the filter keeps e.
func (f Filter) Match(e Event) bool {
	m := e.Msg
	attrs := m.Actor.Attributes
	idName := []string{m.Actor.ID, attrs["name"]}
	for key, vals := range f {
		if len(vals) == 0 {
			continue
		}
		var ok bool
		switch key {
		case "type":
			ok = exact(vals, string(m.Type))
		case "event", "action":
			ok = exact(vals, string(m.Action))
		case "scope":
			ok = exact(vals, m.Scope)
		case "id":
			ok = prefix(vals, m.Actor.ID)
		case "name":
			ok = exact(vals, attrs["name"])
		case "label":
			// Stack labels match under shoal's and Docker's keys.
			ok = labels(vals, e.Labels) || labels(vals, convert.StackLabelsToMoby(e.Labels))
		case "service":
			if m.Type == TaskEventType {
				ok = fuzzy(vals, attrs["service.id"], attrs["service.name"])
			} else {
				ok = m.Type == events.ServiceEventType && fuzzy(vals, idName...)
			}
		case "node":
			if m.Type == TaskEventType {
				ok = fuzzy(vals, attrs["node.id"])
			} else {
				ok = m.Type == events.NodeEventType && fuzzy(vals, idName...)
			}
		case "network":
			ok = m.Type == events.NetworkEventType && fuzzy(vals, idName...)
		case "secret":
			ok = m.Type == events.SecretEventType && fuzzy(vals, idName...)
		case "config":
			ok = m.Type == events.ConfigEventType && fuzzy(vals, idName...)
		default: // container, image, volume, daemon, plugin: not in a swarm's events
			ok = false
		}
		if !ok {
			return false
		}
	}
	return true
}

func exact(vals []string, s string) bool {
	for _, v := range vals {
		if v == s {
			return true
		}
	}
	return false
}

func prefix(vals []string, s string) bool {
	for _, v := range vals {
		if v != "" && strings.HasPrefix(s, v) {
			return true
		}
	}
	return false
}

// fuzzy is dockerd's FuzzyMatch: a value equal to, or a prefix of, one of
// the sources.
func fuzzy(vals []string, sources ...string) bool {
	for _, s := range sources {
		if s != "" && (exact(vals, s) || prefix(vals, s)) {
			return true
		}
	}
	return false
}

// labels matches "key" (any value) and "key=value" against an object's
// labels: every value must match, as dockerd's label filter.
func labels(vals []string, have map[string]string) bool {
	for _, v := range vals {
		k, want, withValue := strings.Cut(v, "=")
		got, present := have[k]
		if !present || withValue && got != want {
			return false
		}
	}
	return true
}
