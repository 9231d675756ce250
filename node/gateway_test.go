package node

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

// The gateway runs with a connection to the control socket and the node's
// TLS identity once it is in a swarm, and ends before Run returns.
func TestGatewayRunsWithTheNode(t *testing.T) {
	var (
		running  atomic.Bool
		gotTLS   = make(chan bool, 8)
		infoSeen = make(chan api.InfoResponse_State, 8)
		probe    = make(chan struct{}, 8)
	)
	gw := func(ctx context.Context, env GatewayEnv) error {
		running.Store(true)
		defer running.Store(false)
		local := api.NewLocalNodeClient(env.Conn)
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-probe:
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				in, err := local.Info(cctx, &api.InfoRequest{})
				cancel()
				if err != nil {
					return err
				}
				infoSeen <- in.GetState()
				cert, roots, ok := env.NodeTLS()
				gotTLS <- ok && cert != nil && roots != nil
			}
		}
	}
	n1 := startNodeWith(t, t.TempDir(), freeAddr(t), newFakeExec(), func(c *Config) { c.Gateway = gw })
	probe <- struct{}{}
	if st, ok := <-infoSeen, <-gotTLS; st != api.InfoResponse_INACTIVE || ok {
		t.Fatalf("before init: state %v, TLS %v", st, ok)
	}
	initSwarm(t, n1)
	probe <- struct{}{}
	if st, ok := <-infoSeen, <-gotTLS; st != api.InfoResponse_ACTIVE || !ok {
		t.Fatalf("after init: state %v, TLS %v", st, ok)
	}
	n1.stop()
	if running.Load() {
		t.Fatal("the gateway still runs after Run returned")
	}
}

// A gateway that fails stops the node with its error.
func TestGatewayFailureStopsTheNode(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir, ListenAddr: freeAddr(t), ControlSocket: dir + "/ctl.sock", Executor: newFakeExec().open, Logger: testLogger(t),
		Gateway: func(context.Context, GatewayEnv) error { return errors.New("docker API socket /x: permission denied") }}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	err := Run(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("Run = %v, want the gateway's error", err)
	}
}
