package network_test

import (
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/shoal-project/shoal/cmd/shoal/internal/commandtest"
	"github.com/shoal-project/shoal/cmd/shoal/internal/daemontest"
	"github.com/shoal-project/shoal/cmd/shoal/internal/golden"
	api "github.com/shoal-project/shoal/proto"
)

func TestNetworkCreate(t *testing.T) {
	e := commandtest.New(t, time.Hour)
	e.Golden("network_create", "network", "create", "-d", "overlay", "--attachable", "--subnet", "10.20.0.0/24", "--subnet", "10.21.0.0/24",
		"--gateway", "10.21.0.1", "--ip-range", "10.20.0.128/25", "--label", "team=web", "--opt", "encrypted", "--opt", "com.example.mtu=1400", "front")
	req := e.Srv.Requests("CreateNetwork")[0].(*api.CreateNetworkRequest)
	raw, _ := protojson.Marshal(req)
	var v any
	if err := json.Unmarshal(raw, &v); err != nil { // protojson's spacing varies on purpose
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	golden.Assert(t, string(b)+"\n", "network_create.request.json")
	e.Golden("network_create_ingress", "network", "create", "--ingress", "--internal", "mesh")
	e.Golden("network_create_bridge", "network", "create", "-d", "bridge", "x")
	e.Golden("network_create_gateway_outside", "network", "create", "--subnet", "10.0.0.0/24", "--gateway", "10.1.0.1", "x")
	e.Golden("network_create_two_gateways", "network", "create", "--subnet", "10.0.0.0/24", "--gateway", "10.0.0.1", "--gateway", "10.0.0.2", "x")
	e.Golden("network_create_bad_subnet", "network", "create", "--subnet", "10.0.0.0", "x")
	e.Golden("network_create_exists", "network", "create", "front")
}

func TestNetworkLs(t *testing.T) {
	e := commandtest.New(t, time.Hour)
	e.Run("network", "create", "--label", "team=web", "front")
	e.Run("network", "create", "back")
	e.Golden("network_ls", "network", "ls")
	e.Golden("network_ls_notrunc", "network", "ls", "--no-trunc")
	e.Golden("network_ls_quiet", "network", "ls", "-q", "-f", "name=ack")
	e.Golden("network_ls_label", "network", "ls", "-f", "label=team=web", "--format", "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels}}")
	e.Golden("network_ls_json", "network", "ls", "--format", "json", "-f", "name=front")
	e.Golden("network_ls_bad_filter", "network", "ls", "-f", "colour=red")
}

func TestNetworkInspectRm(t *testing.T) {
	e := commandtest.New(t, time.Hour)
	e.Golden("network_inspect", "network", "inspect", "backend", "nope")
	e.Golden("network_inspect_format", "network", "inspect", "-f", "{{.ID}} {{.Spec.Name}}", "backend")
	e.Golden("network_rm", "network", "rm", "backend", "nope")
}

func TestNetworkPrune(t *testing.T) {
	e := commandtest.New(t, time.Hour)
	e.Run("network", "create", "unused")
	e.Run("network", "create", "used")
	e.Run("network", "create", "--ingress", "ingress")
	e.Srv.Edit(func(f *daemontest.Fixture) {
		for _, n := range f.Networks {
			if n.GetSpec().GetAnnotations().GetName() == "used" {
				f.Service("web").Spec.Task.Networks = []*api.NetworkAttachmentConfig{{Target: n.GetId()}}
			}
		}
	})
	e.Stdin = "n\n"
	e.Golden("network_prune_cancelled", "network", "prune")
	e.Stdin = "y\n"
	e.Golden("network_prune", "network", "prune")
	e.Golden("network_prune_nothing", "network", "prune", "-f")
}
