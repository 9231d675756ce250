package commands

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/cmd/shoal/internal/daemontest"
	api "github.com/shoal-project/shoal/proto"
)

func TestNodeLs(t *testing.T) {
	e := newEnv(t)
	e.golden("node_ls", "node", "ls")
	e.golden("node_ls_quiet", "node", "ls", "-q")
	e.golden("node_ls_format", "node", "ls", "--format", "table {{.Hostname}}\t{{.Status}}\t{{.Self}}")
	e.golden("node_ls_json", "node", "ls", "--format", "json")
	e.golden("node_ls_raw", "node", "ls", "--format", "{{.Hostname | upper}} {{pad .Availability 1 1}}|{{truncate .ID 5}}")
}

func TestNodeLsFilters(t *testing.T) {
	e := newEnv(t)
	if r := e.run("node", "ls", "-f", "role=manager", "-f", "membership=accepted", "-f", "name=node1", "-f", "id=dx",
		"-f", "label=storage", "-f", "node.label=zone=east"); r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Err)
	}
	e.requestGolden("ListNodes", "node_ls_filters.request")
}

func TestNodeLsBadFilter(t *testing.T) {
	e := newEnv(t)
	e.golden("node_ls_bad_filter_key", "node", "ls", "-f", "colour=red")
	e.golden("node_ls_bad_filter_role", "node", "ls", "-f", "role=boss")
	e.golden("node_ls_bad_filter_format", "node", "ls", "-f", "role")
	e.nothingSent()
}

func TestNodeInspect(t *testing.T) {
	e := newEnv(t)
	e.golden("node_inspect_self", "node", "inspect", "self")
	e.golden("node_inspect_pretty", "node", "inspect", "--pretty", "node1")
	e.golden("node_inspect_format", "node", "inspect", "-f", "{{.ID}} {{.Description.Hostname}} {{.Status.State}} {{.Spec.Availability}} {{json .Spec.Labels}}", "node2", "node10")
	e.golden("node_inspect_missing", "node", "inspect", "node2", "nope")
	e.golden("node_inspect_pretty_and_format", "node", "inspect", "--pretty", "-f", "{{.ID}}", "node2")
}

func TestNodePs(t *testing.T) {
	e := newEnv(t)
	e.golden("node_ps_self", "node", "ps")
	e.golden("node_ps_node2_noresolve", "node", "ps", "--no-resolve", "--no-trunc", "node2")
}

func TestNodeUpdate(t *testing.T) {
	e := newEnv(t)
	e.golden("node_update", "node", "update", "--availability", "drain", "--label-add", "rack=r1", "--label-rm", "ssd", "--role", "worker", "node1")
	req := e.lastRequest("UpdateNode").(*api.UpdateNodeRequest)
	if req.GetNodeId() != daemontest.Node1 || req.GetNodeVersion() != 10 {
		t.Errorf("UpdateNode(%s, version %d), want %s version 10", req.GetNodeId(), req.GetNodeVersion(), daemontest.Node1)
	}
	e.requestGolden("UpdateNode", "node_update.request")
}

func TestNodeUpdateRetriesConflictOnce(t *testing.T) {
	e := newEnv(t)
	aborted := status.Error(codes.Aborted, "update out of sequence")
	e.srv.ErrorsOnce["UpdateNode"] = []error{aborted}
	if r := e.run("node", "update", "--availability", "pause", "node2"); r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Err)
	}
	if n := len(e.srv.Requests("UpdateNode")); n != 2 {
		t.Errorf("%d UpdateNode calls, want 2", n)
	}
	if n := len(e.srv.Requests("GetNode")); n != 2 {
		t.Errorf("%d GetNode calls, want 2 (a fresh read before the retry)", n)
	}
	e.srv.ErrorsOnce["UpdateNode"] = []error{aborted, aborted}
	e.golden("node_update_conflict", "node", "update", "--availability", "pause", "node2")
}

func TestNodeUpdateBadInput(t *testing.T) {
	e := newEnv(t)
	e.golden("node_update_bad_availability", "node", "update", "--availability", "sleep", "node1")
	e.golden("node_update_bad_role", "node", "update", "--role", "boss", "node1")
	e.golden("node_update_no_node", "node", "update", "--role", "worker")
	e.nothingSent()
	e.golden("node_update_missing_label", "node", "update", "--label-rm", "nope", "node1")
	e.noMutations()
}

func TestNodePromoteDemote(t *testing.T) {
	e := newEnv(t)
	e.golden("node_promote", "node", "promote", "node3", "node2")
	e.golden("node_demote", "node", "demote", "node1")
	req := e.lastRequest("UpdateNode").(*api.UpdateNodeRequest)
	if req.GetSpec().GetDesiredRole() != api.NodeRole_WORKER {
		t.Errorf("demote sent role %v", req.GetSpec().GetDesiredRole())
	}
}

func TestNodeRm(t *testing.T) {
	e := newEnv(t)
	e.golden("node_rm", "node", "rm", "--force", "node3", "nope", "node10")
	req := e.srv.Requests("RemoveNode")[0].(*api.RemoveNodeRequest)
	if !req.GetForce() {
		t.Error("--force not sent")
	}
}
