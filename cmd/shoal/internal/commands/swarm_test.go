package commands

import (
	"testing"

	"github.com/shoal-project/shoal/cmd/shoal/internal/daemontest"
	api "github.com/shoal-project/shoal/proto"
)

func TestSwarmInit(t *testing.T) {
	e := newEnv(t)
	e.srv.InitResp = &api.InitResponse{NodeId: daemontest.Node1, ClusterId: daemontest.Cluster, WorkerToken: daemontest.WorkerToken, AdvertiseAddr: "10.0.0.1:4242"}
	e.golden("swarm_init", "swarm", "init", "--advertise-addr", "10.0.0.1")
	e.requestGolden("Init", "swarm_init.request")
}

func TestSwarmInitAllFlags(t *testing.T) {
	e := newEnv(t)
	e.srv.InitResp = &api.InitResponse{NodeId: daemontest.Node1, WorkerToken: daemontest.WorkerToken, AdvertiseAddr: "192.168.99.100", UnlockKey: "SHKEY-1-QefwcEg1VZAvl1uKmhH8OReM6i+CqWMWv6bgF0F/tvU"}
	e.golden("swarm_init_autolock", "swarm", "init", "--advertise-addr", "eth0", "--listen-addr", "192.168.99.100",
		"--force-new-cluster", "--availability", "drain", "--autolock", "--cert-expiry", "720h", "--dispatcher-heartbeat", "10s",
		"--snapshot-interval", "5000", "--max-snapshots", "2", "--task-history-limit", "3",
		"--default-addr-pool", "10.20.0.0/16", "--default-addr-pool", "10.30.0.0/16", "--default-addr-pool-mask-length", "26",
		"--data-path-port", "7789", "--data-path-addr", "10.9.0.1")
	e.requestGolden("Init", "swarm_init_autolock.request")
}

func TestSwarmInitBadInput(t *testing.T) {
	e := newEnv(t)
	e.golden("swarm_init_bad_availability", "swarm", "init", "--availability", "busy")
	e.golden("swarm_init_bad_pool", "swarm", "init", "--default-addr-pool", "10.0.0.0")
	e.golden("swarm_init_pool_mask_too_short", "swarm", "init", "--default-addr-pool", "10.20.0.0/16", "--default-addr-pool-mask-length", "12")
	e.golden("swarm_init_pool_ipv6", "swarm", "init", "--default-addr-pool", "fd00::/48")
	e.golden("swarm_init_bad_expiry", "swarm", "init", "--cert-expiry", "30m")
	e.golden("swarm_init_bad_heartbeat", "swarm", "init", "--dispatcher-heartbeat", "fast")
	e.golden("swarm_init_heartbeat_too_long", "swarm", "init", "--dispatcher-heartbeat", "2562047h")
	e.golden("swarm_init_expiry_too_long", "swarm", "init", "--cert-expiry", "900000h")
	e.golden("swarm_init_unsupported", "swarm", "init", "--external-ca", "protocol=cfssl,url=https://ca.example.com")
	e.golden("swarm_init_bad_data_path_port", "swarm", "init", "--data-path-port", "80")
	e.golden("swarm_init_bad_data_path_addr", "swarm", "init", "--data-path-addr", "10.0.0.1:4789")
	e.golden("swarm_init_args", "swarm", "init", "10.0.0.1")
	e.nothingSent()
}

func TestSwarmJoin(t *testing.T) {
	e := newEnv(t)
	e.srv.JoinResp = &api.JoinResponse{NodeId: daemontest.Node3, Role: api.NodeRole_WORKER}
	e.golden("swarm_join_worker", "swarm", "join", "--token", daemontest.WorkerToken, "--availability", "pause", "--advertise-addr", "10.0.0.3", "--data-path-addr", "eth1", "10.0.0.1")
	e.requestGolden("Join", "swarm_join_worker.request")
	e.srv.JoinResp = &api.JoinResponse{NodeId: daemontest.Node2, Role: api.NodeRole_MANAGER}
	e.golden("swarm_join_manager", "swarm", "join", "--token", daemontest.ManagerToken, "--listen-addr", "0.0.0.0:5000", "10.0.0.1:4242")
}

func TestSwarmJoinBadInput(t *testing.T) {
	e := newEnv(t)
	e.golden("swarm_join_no_token", "swarm", "join", "10.0.0.1:4242")
	e.golden("swarm_join_no_addr", "swarm", "join", "--token", "x")
	e.golden("swarm_join_bad_data_path_addr", "swarm", "join", "--token", "x", "--data-path-addr", "10.0.0.0/24", "10.0.0.1")
	e.nothingSent()
}

func TestSwarmJoinToken(t *testing.T) {
	e := newEnv(t)
	e.golden("swarm_join_token_worker", "swarm", "join-token", "worker")
	e.golden("swarm_join_token_manager_quiet", "swarm", "join-token", "-q", "manager")
	e.golden("swarm_join_token_rotate", "swarm", "join-token", "--rotate", "worker")
	req := e.lastRequest("UpdateCluster").(*api.UpdateClusterRequest)
	if !req.GetRotation().GetWorkerJoinToken() || req.GetRotation().GetManagerJoinToken() || req.GetClusterVersion() != 3 {
		t.Errorf("rotation request %v", req)
	}
	e.golden("swarm_join_token_rotate_quiet", "swarm", "join-token", "--rotate", "-q", "manager")
	e.golden("swarm_join_token_bad_role", "swarm", "join-token", "admin")
}

func TestSwarmLeaveAndUpdate(t *testing.T) {
	e := newEnv(t)
	e.golden("swarm_leave", "swarm", "leave", "--force")
	if !e.lastRequest("Leave").(*api.LeaveRequest).GetForce() {
		t.Error("--force not sent")
	}
	e.golden("swarm_update", "swarm", "update", "--task-history-limit", "10", "--dispatcher-heartbeat", "3s")
	e.requestGolden("UpdateCluster", "swarm_update.request")
}

func TestSwarmUnlock(t *testing.T) {
	e := newEnv(t)
	e.srv.UnlockKey = daemontest.UnlockKey
	e.srv.InfoResp = &api.InfoResponse{State: api.InfoResponse_ACTIVE}
	e.golden("swarm_unlock_not_locked", "swarm", "unlock")
	e.srv.InfoResp = &api.InfoResponse{State: api.InfoResponse_INACTIVE}
	e.golden("swarm_unlock_inactive", "swarm", "unlock")
	if len(e.srv.Requests("Unlock")) != 0 {
		t.Fatal("Unlock was sent to a node that is not locked")
	}
	e.srv.InfoResp = &api.InfoResponse{State: api.InfoResponse_LOCKED}
	e.stdin = "SHKEY-1-wrongwrongwrong\n"
	e.golden("swarm_unlock_wrong_key", "swarm", "unlock")
	e.stdin = "  " + daemontest.UnlockKey + "\n"
	e.golden("swarm_unlock", "swarm", "unlock")
	if got := e.lastRequest("Unlock").(*api.UnlockRequest).GetUnlockKey(); got != daemontest.UnlockKey {
		t.Errorf("Unlock sent key %q, want the trimmed line from stdin", got)
	}
}

func TestSwarmUnlockKey(t *testing.T) {
	e := newEnv(t)
	e.golden("swarm_unlock_key_off", "swarm", "unlock-key")
	e.golden("swarm_unlock_key_rotate_off", "swarm", "unlock-key", "--rotate")
	e.golden("swarm_update_autolock", "swarm", "update", "--autolock=true")
	e.golden("swarm_unlock_key", "swarm", "unlock-key")
	e.golden("swarm_unlock_key_quiet", "swarm", "unlock-key", "-q")
	e.golden("swarm_unlock_key_rotate", "swarm", "unlock-key", "--rotate")
	if !e.lastRequest("UpdateCluster").(*api.UpdateClusterRequest).GetRotation().GetManagerUnlockKey() {
		t.Error("--rotate did not ask for a rotation of the unlock key")
	}
	e.golden("swarm_unlock_key_rotate_quiet", "swarm", "unlock-key", "--rotate", "-q")
	e.golden("swarm_update_autolock_again", "swarm", "update", "--autolock=true")
	e.golden("swarm_update_autolock_off", "swarm", "update", "--autolock=false")
	e.golden("swarm_unlock_key_after_off", "swarm", "unlock-key", "-q")
}
