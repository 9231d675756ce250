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

// Gateways runs each gateway until ctx ends; the first failure stops the
// others and is returned.
func TestGatewaysRunTogether(t *testing.T) {
	if Gateways(nil, nil) != nil {
		t.Fatal("Gateways of nothing is not nil")
	}
	var started, stopped atomic.Int32
	waiter := func(ctx context.Context, _ GatewayEnv) error {
		started.Add(1)
		<-ctx.Done()
		stopped.Add(1)
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Gateways(waiter, nil, waiter)(ctx, GatewayEnv{}) }()
	deadline := time.Now().Add(10 * time.Second)
	for started.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the gateways did not start in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil || stopped.Load() != 2 {
			t.Fatalf("after ctx ended: err %v, %d stopped", err, stopped.Load())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Gateways did not return in 10 s after ctx ended")
	}
	boom := errors.New("boom")
	failing := func(context.Context, GatewayEnv) error { return boom }
	stopped.Store(0)
	select {
	case err := <-func() chan error {
		c := make(chan error, 1)
		go func() { c <- Gateways(waiter, failing)(context.Background(), GatewayEnv{}) }()
		return c
	}():
		if !errors.Is(err, boom) || stopped.Load() != 1 {
			t.Fatalf("one failing: err %v, %d others stopped", err, stopped.Load())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Gateways did not return in 10 s after one failed")
	}
}
