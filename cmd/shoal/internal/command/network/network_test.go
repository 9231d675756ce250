package network_test

import (
	"encoding/json"
	"testing"

	"github.com/shoal-project/shoal/cmd/shoal/internal/golden"
	api "github.com/shoal-project/shoal/proto"
	"google.golang.org/protobuf/encoding/protojson"
)

func TestNetworkCreate(t *testing.T) {
	e := newEnv(t)
	e.golden("network_create", "network", "create", "-d", "overlay", "--attachable", "--subnet", "10.20.0.0/24", "--subnet", "10.21.0.0/24",
		"--gateway", "10.21.0.1", "--ip-range", "10.20.0.128/25", "--label", "team=web", "--opt", "encrypted", "--opt", "com.example.mtu=1400", "front")
	req := e.srv.Requests("CreateNetwork")[0].(*api.CreateNetworkRequest)
	raw, _ := protojson.Marshal(req)
	var v any
	if err := json.Unmarshal(raw, &v); err != nil { // protojson's spacing varies on purpose
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	golden.Assert(t, string(b)+"\n", "network_create.request.json")
	e.golden("network_create_ingress", "network", "create", "--ingress", "--internal", "mesh")
	e.golden("network_create_bridge", "network", "create", "-d", "bridge", "x")
	e.golden("network_create_gateway_outside", "network", "create", "--subnet", "10.0.0.0/24", "--gateway", "10.1.0.1", "x")
	e.golden("network_create_two_gateways", "network", "create", "--subnet", "10.0.0.0/24", "--gateway", "10.0.0.1", "--gateway", "10.0.0.2", "x")
	e.golden("network_create_bad_subnet", "network", "create", "--subnet", "10.0.0.0", "x")
	e.golden("network_create_exists", "network", "create", "front")
}

func TestNetworkLs(t *testing.T) {
	e := newEnv(t)
	e.run("network", "create", "--label", "team=web", "front")
	e.run("network", "create", "back")
	e.golden("network_ls", "network", "ls")
	e.golden("network_ls_notrunc", "network", "ls", "--no-trunc")
	e.golden("network_ls_quiet", "network", "ls", "-q", "-f", "name=ack")
	e.golden("network_ls_label", "network", "ls", "-f", "label=team=web", "--format", "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels}}")
	e.golden("network_ls_json", "network", "ls", "--format", "json", "-f", "name=front")
	e.golden("network_ls_bad_filter", "network", "ls", "-f", "colour=red")
}

func TestNetworkInspectRm(t *testing.T) {
	e := newEnv(t)
	e.golden("network_inspect", "network", "inspect", "backend", "nope")
	e.golden("network_inspect_format", "network", "inspect", "-f", "{{.ID}} {{.Spec.Name}}", "backend")
	e.golden("network_rm", "network", "rm", "backend", "nope")
}

func TestNetworkPrune(t *testing.T) {
	e := newEnv(t)
	e.run("network", "create", "unused")
	e.run("network", "create", "used")
	e.run("network", "create", "--ingress", "ingress")
	e.srv.Mu.Lock()
	for _, n := range e.srv.Networks {
		if n.GetSpec().GetAnnotations().GetName() == "used" {
			e.srv.Services[0].Spec.Task.Networks = []*api.NetworkAttachmentConfig{{Target: n.GetId()}}
		}
	}
	e.srv.Mu.Unlock()
	e.stdin = "n\n"
	e.golden("network_prune_cancelled", "network", "prune")
	e.stdin = "y\n"
	e.golden("network_prune", "network", "prune")
	e.golden("network_prune_nothing", "network", "prune", "-f")
}
