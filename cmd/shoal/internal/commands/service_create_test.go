package commands

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	api "github.com/shoal-project/shoal/proto"
)

// The brief's example: memory limit, constraint and restart condition land
// in the spec as the daemon expects them.
func TestServiceCreateMapsFlags(t *testing.T) {
	e := newEnv(t)
	r := e.golden("service_create_detach", "service", "create", "-d", "--name", "db",
		"--limit-memory", "64m", "--constraint", "node.role==manager", "--restart-condition", "on-failure", "postgres:16")
	if r.Code != 0 {
		t.Fatal(r.Err)
	}
	spec := e.lastRequest("CreateService").(*api.CreateServiceRequest).GetSpec()
	if got := spec.GetTask().GetResources().GetLimits().GetMemoryBytes(); got != 64<<20 {
		t.Errorf("memory limit %d, want %d", got, 64<<20)
	}
	if got := spec.GetTask().GetPlacement().GetConstraints(); len(got) != 1 || got[0] != "node.role==manager" {
		t.Errorf("constraints %v", got)
	}
	if got := spec.GetTask().GetRestart().GetCondition(); got != api.RestartPolicy_ON_FAILURE {
		t.Errorf("restart condition %v", got)
	}
	if spec.GetTask().GetRestart().GetDelay() != nil {
		t.Error("restart delay sent though not given; the daemon fills it")
	}
	e.requestGolden("CreateService", "service_create_detach.request")
}

func TestServiceCreateDefaults(t *testing.T) {
	e := newEnv(t)
	if r := e.run("service", "create", "-d", "nginx"); r.Code != 0 {
		t.Fatal(r.Err)
	}
	e.requestGolden("CreateService", "service_create_defaults.request")
	// The daemon names a service created without a name, as Docker's does.
	e.golden("service_create_unnamed_ls", "service", "ls", "--format", "{{.Name}} {{.ID}}", "-f", "id=n001")
}

func TestServiceCreateAllFlags(t *testing.T) {
	e := newEnv(t)
	envFile := filepath.Join("testdata", "app.env")
	e.vars["HOME_DIR"] = "/home/me"
	e.vars["TOKEN"] = "s3cret"
	r := e.run("service", "create", "--detach", "--quiet", "--name", "web2", "--replicas", "4",
		"-e", "A=1", "--env", "TOKEN", "--env-file", envFile, "--entrypoint", "/bin/sh -c", "-w", "/srv", "-u", "www:www",
		"--hostname", "{{.Service.Name}}-{{.Task.Slot}}", "-l", "team=web", "-l", "tier", "--container-label", "c=1",
		"--init", "--read-only", "--stop-grace-period", "30s", "--stop-signal", "SIGQUIT",
		"--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD", "--sysctl", "net.core.somaxconn=1024", "--ulimit", "nofile=1024:2048",
		// dnsrr takes no ingress ports (the daemon refuses them, as Docker's).
		"-p", "mode=host,published=8080,target=80", "-p", "published=9443,target=443,protocol=tcp,mode=host",
		"--endpoint-mode", "dnsrr", "--mount", "type=bind,source=/srv/data,target=/data,readonly",
		"--mount", "type=tmpfs,target=/tmp,tmpfs-size=64m,tmpfs-mode=1777",
		"--secret", "db-password", "--config", "source=nginx-conf,target=/etc/nginx/nginx.conf,mode=0440",
		"--network", "backend", "--constraint", "node.labels.zone!=west", "--placement-pref", "spread=node.labels.zone",
		"--replicas-max-per-node", "2", "--limit-cpu", "1.5", "--limit-pids", "100", "--reserve-cpu", "0.25", "--reserve-memory", "32MiB",
		"--generic-resource", "gpu=1",
		"--restart-delay", "10s", "--restart-max-attempts", "3", "--restart-window", "2m",
		"--update-parallelism", "2", "--update-delay", "10s", "--update-failure-action", "rollback", "--update-monitor", "30s",
		"--update-max-failure-ratio", "0.25", "--update-order", "start-first",
		"--rollback-parallelism", "0", "--rollback-failure-action", "continue", "--rollback-order", "stop-first",
		"--health-cmd", "curl -f http://localhost/", "--health-interval", "5s", "--health-timeout", "2s", "--health-retries", "4",
		"--health-start-period", "20s", "--health-start-interval", "1s",
		"--dns", "10.0.0.53", "--dns-search", "example.org", "--dns-option", "ndots:2", "--host", "db.local:10.0.0.9",
		"--group", "video", "--with-registry-auth", "--no-resolve-image",
		"nginx:1.27", "nginx", "-g", "daemon off;")
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Err)
	}
	e.requestGolden("CreateService", "service_create_all.request")
	if calls := strings.Join(e.srv.Methods(), " "); calls != "ListSecrets ListConfigs GetNetwork CreateService" {
		t.Errorf("calls %s", calls)
	}
}

func TestServiceCreateModes(t *testing.T) {
	for _, tc := range []struct{ name, args string }{
		{"global", "--mode global"},
		{"replicated_job", "--mode replicated-job --replicas 10 --max-concurrent 3"},
		{"global_job", "--mode global-job"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			args := append(append([]string{"service", "create", "-d"}, strings.Fields(tc.args)...), "busybox", "true")
			if r := e.run(args...); r.Code != 0 {
				t.Fatal(r.Err)
			}
			e.requestGolden("CreateService", "service_create_mode_"+tc.name+".request")
		})
	}
}

func TestServiceCreateErrors(t *testing.T) {
	e := newEnv(t)
	e.golden("service_create_latest", "service", "create", "-d", "--name", "w", "nginx:latest")
	e.golden("service_create_exists", "service", "create", "-d", "--name", "web", "nginx")
	e.golden("service_create_missing_secret", "service", "create", "-d", "--secret", "nope", "nginx")
	e.golden("service_create_missing_network", "service", "create", "-d", "--network", "nowhere", "nginx")
}

// Every invalid command line is refused before anything reaches the daemon.
func TestServiceCreateBadInput(t *testing.T) {
	envFile := filepath.Join("testdata", "bad.env")
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"no_image", nil, 1},
		{"replicas_negative", []string{"--replicas", "-2"}, command.UsageExitCode},
		{"limit_memory", []string{"--limit-memory", "64x"}, command.UsageExitCode},
		{"limit_cpu", []string{"--limit-cpu", "lots"}, command.UsageExitCode},
		{"limit_cpu_precise", []string{"--limit-cpu", "0.0000000001"}, command.UsageExitCode},
		{"restart_condition", []string{"--restart-condition", "sometimes"}, 1}, // docker parses it, then refuses it
		{"restart_delay", []string{"--restart-delay", "soon"}, command.UsageExitCode},
		{"stop_grace_negative", []string{"--stop-grace-period", "-5s"}, 1},        // docker parses it, then refuses it
		{"constraint_operator", []string{"--constraint", "node.role=manager"}, 1}, // docker parses it, then refuses it
		{"constraint_key", []string{"--constraint", "node.colour==red"}, 1},       // docker parses it, then refuses it
		{"constraint_role", []string{"--constraint", "node.role==boss"}, 1},       // docker parses it, then refuses it
		{"constraint_value", []string{"--constraint", "node.hostname=="}, 1},      // docker parses it, then refuses it
		{"placement_pref", []string{"--placement-pref", "pack=node.labels.zone"}, command.UsageExitCode},
		{"mode", []string{"--mode", "daemonset"}, 1}, // docker parses it, then refuses it
		{"mode_global_replicas", []string{"--mode", "global", "--replicas", "3"}, 1},
		{"max_concurrent_replicated", []string{"--max-concurrent", "2"}, 1},
		{"max_per_node_global", []string{"--mode", "global", "--replicas-max-per-node", "1"}, 1},
		{"job_update_flags", []string{"--mode", "replicated-job", "--update-delay", "5s"}, 1},
		{"healthcheck_conflict", []string{"--no-healthcheck", "--health-cmd", "true"}, 1},
		{"health_retries", []string{"--health-retries", "-1"}, 1},
		{"publish_hostip", []string{"-p", "127.0.0.1:8080:80"}, command.UsageExitCode},
		{"publish_no_target", []string{"-p", "published=8080"}, command.UsageExitCode},
		{"publish_range", []string{"-p", "70000:80"}, command.UsageExitCode},
		{"publish_protocol", []string{"-p", "80/icmp"}, command.UsageExitCode},
		{"publish_mode", []string{"-p", "target=80,mode=direct"}, command.UsageExitCode},
		{"mount_bind_no_source", []string{"--mount", "type=bind,target=/x"}, command.UsageExitCode},
		{"mount_no_target", []string{"--mount", "source=data"}, command.UsageExitCode},
		{"mount_type", []string{"--mount", "type=nfs,target=/x"}, command.UsageExitCode},
		{"mount_unsupported", []string{"--mount", "type=volume,target=/x,volume-driver=local"}, command.UsageExitCode},
		{"update_failure_action", []string{"--update-failure-action", "explode"}, 1},      // docker parses it, then refuses it
		{"rollback_failure_action", []string{"--rollback-failure-action", "rollback"}, 1}, // docker parses it, then refuses it
		{"update_ratio", []string{"--update-max-failure-ratio", "2"}, 1},                  // docker parses it, then refuses it
		{"update_order", []string{"--update-order", "sideways"}, 1},                       // docker parses it, then refuses it
		{"env_empty_name", []string{"-e", "=foo"}, command.UsageExitCode},
		{"env_file_missing", []string{"--env-file", "/nonexistent/shoal.env"}, 1},
		{"env_file_bad", []string{"--env-file", envFile}, 1},
		{"ulimit_order", []string{"--ulimit", "nofile=2048:1024"}, command.UsageExitCode},
		{"ulimit_name", []string{"--ulimit", "bogus=1"}, command.UsageExitCode},
		{"dns", []string{"--dns", "1.2.3"}, command.UsageExitCode},
		{"host", []string{"--host", "db.local"}, command.UsageExitCode},
		{"sysctl", []string{"--sysctl", "net.core.somaxconn"}, 1}, // docker parses it, then refuses it
		{"secret_no_source", []string{"--secret", "target=/run/x"}, command.UsageExitCode},
		{"secret_duplicate_target", []string{"--secret", "db-password", "--secret", "source=other,target=db-password"}, 1},
		{"config_mode", []string{"--config", "source=c,mode=rw"}, command.UsageExitCode},
		{"entrypoint_quote", []string{"--entrypoint", "sh -c 'echo"}, 1},
		{"unknown_flag", []string{"--colour", "red"}, command.UsageExitCode},
		{"update_ratio_nan", []string{"--update-max-failure-ratio", "NaN"}, 1},      // docker parses it, then refuses it
		{"rollback_ratio_inf", []string{"--rollback-max-failure-ratio", "+Inf"}, 1}, // docker parses it, then refuses it
		{"stop_grace_too_long", []string{"--stop-grace-period", "2h"}, 1},
		{"stop_grace_292_years", []string{"--stop-grace-period", "2562048h"}, command.UsageExitCode},
		{"restart_window_too_long", []string{"--restart-window", "200h"}, 1},
		{"health_interval_too_long", []string{"--health-cmd", "true", "--health-interval", "90m"}, 1},
		{"update_monitor_too_long", []string{"--update-monitor", "3h"}, 1},
		{"replicas_overflow", []string{"--replicas", "99999999999999999999"}, command.UsageExitCode},
		{"replicas_too_many", []string{"--replicas", "1000001"}, 1},
		{"health_retries_overflow", []string{"--health-retries", "4294967295"}, 1},
		{"limit_pids_overflow", []string{"--limit-pids", "-99999999999999999999"}, command.UsageExitCode},
		{"env_not_utf8", []string{"-e", "B=\xff"}, 1},
		{"name_not_utf8", []string{"--name", "web\xff"}, 1},
		{"label_not_utf8", []string{"-l", "team=\xfe"}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			args := append([]string{"service", "create"}, tc.args...)
			if tc.name != "no_image" {
				args = append(args, "nginx")
			}
			r := e.golden("service_create_bad_"+tc.name, args...)
			if r.Code != tc.code {
				t.Errorf("exit %d, want %d", r.Code, tc.code)
			}
			e.nothingSent()
		})
	}
}
