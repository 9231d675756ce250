package scheduler

import (
	"strings"
	"testing"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

func TestParseConstraints(t *testing.T) {
	for _, tc := range []struct {
		expr      string
		key, val  string
		op        Operator
		wantError string // substring of the error; "" means valid
	}{
		{expr: "node.role==manager", key: "node.role", op: Equal, val: "manager"},
		{expr: " node.labels.zone != east ", key: "node.labels.zone", op: NotEqual, val: "east"},
		{expr: "Node.Hostname==web-1", key: "Node.Hostname", op: Equal, val: "web-1"},
		{expr: "engine.labels.gpu==true", key: "engine.labels.gpu", op: Equal, val: "true"},
		{expr: "node.platform.os==linux", key: "node.platform.os", op: Equal, val: "linux"},
		{expr: "node.platform.arch!=arm64", key: "node.platform.arch", op: NotEqual, val: "arm64"},
		{expr: "node.id==abc123", key: "node.id", op: Equal, val: "abc123"},
		{expr: "node.role==WORKER", key: "node.role", op: Equal, val: "WORKER"},
		{expr: "", wantError: "empty expression; want KEY==VALUE or KEY!=VALUE"},
		{expr: "node.role", wantError: "no operator; want KEY==VALUE"},
		{expr: "node.role=manager", wantError: "no operator (use ==, not =)"},
		{expr: "node.role==manager==worker", wantError: "more than one operator"},
		{expr: "node.role==manager!=worker", wantError: "more than one operator"},
		{expr: "==manager", wantError: "missing key before the operator"},
		{expr: "node.role==", wantError: "missing value after the operator"},
		{expr: "node.colour==red", wantError: `unknown key "node.colour"; valid keys are node.id, node.hostname`},
		{expr: "node.labels.==x", wantError: `missing label name after "node.labels."`},
		{expr: "engine.labels.==x", wantError: `missing label name after "engine.labels."`},
		{expr: "node.role==boss", wantError: "node.role must be manager or worker"},
		{expr: "node labels.zone==x", wantError: "contains spaces"},
		{expr: "node.labels.zone==a=b", wantError: "value must not contain = or !"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			cs, err := ParseConstraints([]string{tc.expr})
			if tc.wantError != "" {
				if err == nil {
					t.Fatalf("parsed %v, want error containing %q", cs, tc.wantError)
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("error %v is not InvalidArgument", err)
				}
				if !strings.Contains(err.Error(), tc.wantError) || !strings.Contains(err.Error(), `"`+tc.expr+`"`) {
					t.Errorf("error %q should quote the expression and contain %q", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := cs[0]
			if c.Key != tc.key || c.Operator != tc.op || c.Value != tc.val {
				t.Errorf("got %q %v %q, want %q %v %q", c.Key, c.Operator, c.Value, tc.key, tc.op, tc.val)
			}
		})
	}
}

func TestParseConstraintsStopsAtFirstError(t *testing.T) {
	_, err := ParseConstraints([]string{"node.role==manager", "bogus", "node.x==y"})
	if err == nil || !strings.Contains(err.Error(), `"bogus"`) {
		t.Fatalf("err = %v, want one naming \"bogus\"", err)
	}
	if cs, err := ParseConstraints(nil); cs != nil || err != nil {
		t.Fatalf("nil input: %v, %v", cs, err)
	}
}

func TestConstraintMatch(t *testing.T) {
	n := testNode("node-1", manager, labels("zone", "East", "ssd", ""), engineLabels("gpu", "true"), platform("linux", "x86_64"))
	n.Description.Hostname = "Web-1"
	for _, tc := range []struct {
		expr string
		want bool
	}{
		{"node.id==node-1", true},
		{"node.id!=node-1", false},
		{"node.hostname==web-1", true}, // case-insensitive, as Docker
		{"node.hostname!=WEB-1", false},
		{"node.role==manager", true},
		{"node.role==Manager", true},
		{"node.role!=manager", false},
		{"node.role==worker", false},
		{"node.labels.zone==east", true}, // values fold case for every key, as Docker
		{"node.labels.zone!=west", true},
		{"node.labels.Zone==east", false}, // label names keep their case
		{"node.labels.rack==r1", false},   // absent label is ""
		{"node.labels.rack!=r1", true},
		{"node.labels.ssd!=yes", true},
		{"engine.labels.gpu==true", true},
		{"engine.labels.gpu==false", false},
		{"node.platform.os==Linux", true},
		{"node.platform.arch==x86_64", true},
	} {
		cs, err := ParseConstraints([]string{tc.expr})
		if err != nil {
			t.Fatal(err)
		}
		if got := cs[0].Match(n); got != tc.want {
			t.Errorf("%s: Match = %v, want %v", tc.expr, got, tc.want)
		}
		if cs[0].String() != strings.ReplaceAll(tc.expr, " ", "") {
			t.Errorf("String() = %q, want %q", cs[0].String(), tc.expr)
		}
	}
	worker := testNode("w")
	cs, _ := ParseConstraints([]string{"node.role==worker", "node.labels.zone!=east"})
	if !MatchAll(cs, worker) {
		t.Error("worker without zone label should match node.role==worker && node.labels.zone!=east")
	}
	if MatchAll(cs, n) {
		t.Error("manager should not match")
	}
}

func TestParsePreferences(t *testing.T) {
	ps, err := ParsePreferences([]*api.PlacementPreference{{SpreadDescriptor: "node.labels.zone"}, {SpreadDescriptor: "engine.labels.rack"}})
	if err != nil || len(ps) != 2 || ps[0].Descriptor != "node.labels.zone" || ps[1].Descriptor != "engine.labels.rack" {
		t.Fatalf("got %v, %v", ps, err)
	}
	for _, d := range []string{"", "node.role", "spread=node.labels.zone", "node.labels.", "zone"} {
		_, err := ParsePreferences([]*api.PlacementPreference{{SpreadDescriptor: d}})
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "spread descriptor must be node.labels.<label> or engine.labels.<label>") {
			t.Errorf("%q: err = %v", d, err)
		}
	}
}
