package commands

import (
	"google.golang.org/protobuf/proto"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/cmd/shoal/internal/daemontest"
	api "github.com/shoal-project/shoal/proto"
)

func TestServiceUpdateMapsFlags(t *testing.T) {
	e := newEnv(t)
	r := e.golden("service_update_detach", "service", "update", "-d", "--image", "nginx:1.28",
		"--env-add", "MODE=dev", "--env-add", "NEW=1", "--env-rm", "DEBUG",
		"--label-add", "tier=front", "--label-rm", "com.example.team",
		"--publish-add", "9090:90", "--publish-rm", "80",
		"--mount-add", "type=tmpfs,target=/cache", "--mount-rm", "/data",
		"--constraint-add", "node.labels.ssd==true", "--constraint-rm", "node.role==worker",
		"--placement-pref-add", "spread=node.labels.zone",
		"--replicas", "5", "--limit-memory", "128m", "--limit-cpu", "2", "--restart-condition", "any",
		"--update-parallelism", "3", "--force", "--args", "nginx -T",
		"--secret-add", "db-password", "--network-add", "backend",
		"--cap-add", "SYS_TIME", "--host-add", "db:10.0.0.9", "--dns-add", "1.1.1.1",
		"--health-cmd", "true", "--stop-grace-period", "1m", "web")
	if r.Code != 0 {
		t.Fatal(r.Err)
	}
	req := e.lastRequest("UpdateService").(*api.UpdateServiceRequest)
	if req.GetServiceId() != daemontest.Web || req.GetServiceVersion() != 7 || req.GetRollback() != api.UpdateServiceRequest_NONE {
		t.Errorf("UpdateService(%s, %d, %v)", req.GetServiceId(), req.GetServiceVersion(), req.GetRollback())
	}
	if req.GetSpec().GetTask().GetForceUpdate() != 1 {
		t.Errorf("force_update %d, want 1", req.GetSpec().GetTask().GetForceUpdate())
	}
	e.requestGolden("UpdateService", "service_update_detach.request")
}

func TestServiceUpdateLeavesUnchangedFieldsAlone(t *testing.T) {
	e := newEnv(t)
	if r := e.run("service", "update", "-d", "--replicas", "1", "web"); r.Code != 0 {
		t.Fatal(r.Err)
	}
	e.requestGolden("UpdateService", "service_update_replicas.request")
}

func TestServiceUpdateRollbackFlag(t *testing.T) {
	e := newEnv(t)
	e.srv.Edit(func(f *daemontest.Fixture) { // the previous spec ran redis:7
		web := f.Service("web")
		web.PreviousSpec = proto.Clone(web.Spec).(*api.ServiceSpec)
		web.PreviousSpec.Task.Container.Image = "redis:7"
	})
	e.golden("service_update_rollback", "service", "update", "--rollback", "-d", "web")
	req := e.lastRequest("UpdateService").(*api.UpdateServiceRequest)
	if req.GetRollback() != api.UpdateServiceRequest_PREVIOUS || req.GetSpec().GetAnnotations().GetName() != "web" {
		t.Errorf("rollback request %v", req)
	}
}

func TestServiceUpdateBadInput(t *testing.T) {
	e := newEnv(t)
	e.golden("service_update_rollback_combined", "service", "update", "--rollback", "--image", "x", "web")
	e.golden("service_update_health_conflict", "service", "update", "--no-healthcheck", "--health-interval", "5s", "web")
	e.golden("service_update_bad_publish_rm", "service", "update", "--publish-rm", "eighty", "web")
	e.golden("service_update_no_service", "service", "update", "--image", "x")
	e.golden("service_update_ratio_nan", "service", "update", "--update-max-failure-ratio", "nan", "web")
	e.golden("service_update_grace_too_long", "service", "update", "--stop-grace-period", "3h", "web")
	e.golden("service_update_delay_overflow", "service", "update", "--update-delay", "9999999999h", "web")
	e.nothingSent()
	e.golden("service_update_replicas_global", "service", "update", "--replicas", "2", "api")
	e.golden("service_update_max_concurrent", "service", "update", "--max-concurrent", "2", "web")
	e.golden("service_update_missing", "service", "update", "--image", "x", "nope")
	e.noMutations()
}

func TestServiceUpdateConflict(t *testing.T) {
	e := newEnv(t)
	e.srv.Errors["UpdateService"] = status.Error(codes.Aborted, "update out of sequence")
	e.golden("service_update_conflict", "service", "update", "-d", "--image", "nginx:2", "web")
}

func TestServiceScale(t *testing.T) {
	e := newEnv(t)
	e.golden("service_scale", "service", "scale", "-d", "web=5", "migrate=7", "api=2", "nope=1")
	reqs := e.srv.Requests("UpdateService")
	if len(reqs) != 2 {
		t.Fatalf("%d UpdateService calls, want 2", len(reqs))
	}
	if n := reqs[0].(*api.UpdateServiceRequest).GetSpec().GetReplicated().GetReplicas(); n != 5 {
		t.Errorf("web scaled to %d", n)
	}
	if n := reqs[1].(*api.UpdateServiceRequest).GetSpec().GetReplicatedJob().GetTotalCompletions(); n != 7 {
		t.Errorf("migrate scaled to %d", n)
	}
}

func TestServiceScaleBadInput(t *testing.T) {
	e := newEnv(t)
	e.golden("service_scale_no_equals", "service", "scale", "web")
	e.golden("service_scale_bad_number", "service", "scale", "web=3", "api=many")
	e.golden("service_scale_none", "service", "scale")
	e.golden("service_scale_too_many", "service", "scale", "web=1000001")
	e.golden("service_scale_overflow", "service", "scale", "web=99999999999999999999")
	e.nothingSent()
}

func TestServiceRollbackCommand(t *testing.T) {
	e := newEnv(t)
	e.srv.Edit(func(f *daemontest.Fixture) { // the previous spec ran shoal/api:2
		web := f.Service("web")
		web.PreviousSpec = proto.Clone(web.Spec).(*api.ServiceSpec)
		web.PreviousSpec.Task.Container.Image = "shoal/api:2"
	})
	e.golden("service_rollback_detach", "service", "rollback", "-d", "web")
	req := e.lastRequest("UpdateService").(*api.UpdateServiceRequest)
	if req.GetRollback() != api.UpdateServiceRequest_PREVIOUS || req.GetServiceVersion() != 7 {
		t.Errorf("rollback request %v", req)
	}
	e.golden("service_rollback_no_previous", "service", "rollback", "-d", "cache")
}
