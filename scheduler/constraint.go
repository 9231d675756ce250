package scheduler

import (
	"strings"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// Operator compares a node attribute with a constraint's value.
type Operator int

const (
	// Equal is "==": the attribute equals the value.
	Equal Operator = iota
	// NotEqual is "!=": the attribute differs from the value. An absent
	// label counts as the empty string, so it differs from any value.
	NotEqual
)

func (o Operator) String() string {
	if o == NotEqual {
		return "!="
	}
	return "=="
}

// attr names the node attribute a constraint or preference reads.
type attr int

const (
	attrNodeID attr = iota
	attrHostname
	attrRole
	attrOS
	attrArch
	attrNodeLabel
	attrEngineLabel
)

// fixedKeys are the keys without a label part. Docker matches them
// case-insensitively, so "Node.Role==manager" works there and here.
var fixedKeys = map[string]attr{
	"node.id":            attrNodeID,
	"node.hostname":      attrHostname,
	"node.role":          attrRole,
	"node.platform.os":   attrOS,
	"node.platform.arch": attrArch,
}

const (
	nodeLabelPrefix   = "node.labels."
	engineLabelPrefix = "engine.labels."
	constraintForm    = "want KEY==VALUE or KEY!=VALUE, e.g. node.role==manager or node.labels.zone!=east"
	validKeys         = "valid keys are node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<label> and engine.labels.<label>"
)

// Constraint is one parsed placement constraint. A node satisfies a
// service's constraints when it satisfies every one of them.
type Constraint struct {
	// Key is the attribute as written, e.g. "node.labels.zone".
	Key      string
	Operator Operator
	Value    string

	attr  attr
	label string // label name for node.labels / engine.labels, case kept
}

// String gives the constraint back in its written form.
func (c Constraint) String() string { return c.Key + c.Operator.String() + c.Value }

// ParseConstraints parses placement constraints such as
// "node.labels.zone==east" or "node.role!=manager". Every error is of class
// errdefs.ErrInvalidArgument and says what is wrong and what form is valid,
// so the Control API can return it to the user as is.
func ParseConstraints(exprs []string) ([]Constraint, error) {
	if len(exprs) == 0 {
		return nil, nil
	}
	out := make([]Constraint, 0, len(exprs))
	for _, e := range exprs {
		c, err := parseConstraint(e)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func parseConstraint(expr string) (Constraint, error) {
	bad := func(why string) error {
		return errdefs.InvalidArgument("invalid constraint %q: %s; %s", expr, why, constraintForm)
	}
	if strings.TrimSpace(expr) == "" {
		return Constraint{}, bad("empty expression")
	}
	i := strings.Index(expr, "==")
	j := strings.Index(expr, "!=")
	var c Constraint
	var rest string
	switch {
	case i < 0 && j < 0:
		if strings.Contains(expr, "=") {
			return Constraint{}, bad("no operator (use ==, not =)")
		}
		return Constraint{}, bad("no operator")
	case j < 0 || (i >= 0 && i < j):
		c.Operator, c.Key, rest = Equal, expr[:i], expr[i+2:]
	default:
		c.Operator, c.Key, rest = NotEqual, expr[:j], expr[j+2:]
	}
	if strings.Contains(rest, "==") || strings.Contains(rest, "!=") {
		return Constraint{}, bad("more than one operator")
	}
	c.Key = strings.TrimSpace(c.Key)
	c.Value = strings.TrimSpace(rest)
	if c.Key == "" {
		return Constraint{}, bad("missing key before the operator")
	}
	a, label, err := parseKey(c.Key)
	if err != nil {
		return Constraint{}, errdefs.InvalidArgument("invalid constraint %q: %s", expr, err)
	}
	c.attr, c.label = a, label
	if c.Value == "" {
		return Constraint{}, bad("missing value after the operator")
	}
	if strings.ContainsAny(c.Value, "=!") {
		return Constraint{}, bad("value must not contain = or !")
	}
	if a == attrRole && !strings.EqualFold(c.Value, "manager") && !strings.EqualFold(c.Value, "worker") {
		return Constraint{}, errdefs.InvalidArgument("invalid constraint %q: node.role must be manager or worker", expr)
	}
	return c, nil
}

// keyError is a plain error carrying the reason a key is not valid; its
// callers wrap it with the whole expression and the class.
type keyError string

func (e keyError) Error() string { return string(e) }

func parseKey(key string) (attr, string, error) {
	lower := strings.ToLower(key)
	if a, ok := fixedKeys[lower]; ok {
		return a, "", nil
	}
	for _, p := range []struct {
		prefix string
		a      attr
	}{{nodeLabelPrefix, attrNodeLabel}, {engineLabelPrefix, attrEngineLabel}} {
		if strings.HasPrefix(lower, p.prefix) {
			// The label name keeps its case: labels are case-sensitive.
			label := key[len(p.prefix):]
			if label == "" {
				return 0, "", keyError("missing label name after \"" + p.prefix + "\"")
			}
			return p.a, label, nil
		}
	}
	if strings.ContainsAny(key, " \t") {
		return 0, "", keyError("key " + quote(key) + " contains spaces; " + validKeys)
	}
	return 0, "", keyError("unknown key " + quote(key) + "; " + validKeys)
}

func quote(s string) string { return "\"" + s + "\"" }

// nodeAttr reads the attribute a (with label for label attributes) of n.
// ok is false when a label is absent.
func nodeAttr(n *api.Node, a attr, label string) (val string, ok bool) {
	switch a {
	case attrNodeID:
		return n.GetId(), true
	case attrHostname:
		return n.GetDescription().GetHostname(), true
	case attrRole:
		// The role that counts is the one the node holds now, which is
		// what its certificate says, as in Docker.
		if n.GetRole() == api.NodeRole_MANAGER {
			return "manager", true
		}
		return "worker", true
	case attrOS:
		return n.GetDescription().GetPlatform().GetOs(), true
	case attrArch:
		return n.GetDescription().GetPlatform().GetArchitecture(), true
	case attrNodeLabel:
		v, ok := n.GetSpec().GetAnnotations().GetLabels()[label]
		return v, ok
	case attrEngineLabel:
		v, ok := n.GetDescription().GetEngine().GetLabels()[label]
		return v, ok
	}
	return "", false
}

// Match reports whether node n satisfies c. Values compare
// case-insensitively for every key, as Docker does, so a constraint written
// "node.labels.zone==East" matches a node labelled zone=east.
func (c Constraint) Match(n *api.Node) bool {
	v, _ := nodeAttr(n, c.attr, c.label)
	return strings.EqualFold(v, c.Value) == (c.Operator == Equal)
}

// MatchAll reports whether n satisfies every constraint in cs.
func MatchAll(cs []Constraint, n *api.Node) bool {
	for i := range cs {
		if !cs[i].Match(n) {
			return false
		}
	}
	return true
}

// Preference is one parsed spread placement preference.
type Preference struct {
	// Descriptor as written, e.g. "node.labels.zone".
	Descriptor string

	attr  attr
	label string
}

// ParsePreferences parses spread placement preferences. A descriptor is
// node.labels.<label> or engine.labels.<label>; errors are of class
// errdefs.ErrInvalidArgument.
func ParsePreferences(prefs []*api.PlacementPreference) ([]Preference, error) {
	if len(prefs) == 0 {
		return nil, nil
	}
	out := make([]Preference, 0, len(prefs))
	for _, p := range prefs {
		d := strings.TrimSpace(p.GetSpreadDescriptor())
		a, label, err := parseKey(d)
		if err != nil || (a != attrNodeLabel && a != attrEngineLabel) {
			why := "spread descriptor must be node.labels.<label> or engine.labels.<label>, e.g. node.labels.zone (without the spread= prefix)"
			if err != nil && strings.HasPrefix(err.Error(), "missing label") {
				why = err.Error() + "; " + why
			}
			return nil, errdefs.InvalidArgument("invalid placement preference %q: %s", p.GetSpreadDescriptor(), why)
		}
		out = append(out, Preference{Descriptor: d, attr: a, label: label})
	}
	return out, nil
}

// value reads the preference's label on n; ok is false when n lacks it.
func (p Preference) value(n *api.Node) (string, bool) { return nodeAttr(n, p.attr, p.label) }
