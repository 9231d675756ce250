package containerd

import (
	"context"
	"testing"
	"time"
)

// BenchmarkCreateToRunning measures Prepare (image already pulled: a
// manifest check against the registry, snapshot, network, container) plus
// Start (process created and running), the path from an assignment to a
// RUNNING task without health checks. Removal is outside the timer.
//
//	go test -run '^$' -bench CreateToRunning -benchtime 20x ./worker/containerd/
func BenchmarkCreateToRunning(b *testing.B) {
	e := newEnv(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	warm := e.task(busyboxRef)
	c := e.controller(warm)
	if err := c.Prepare(ctx); err != nil {
		b.Fatal(err)
	}
	_ = c.Remove(ctx)

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := e.controller(e.task(busyboxRef))
		if err := c.Prepare(ctx); err != nil {
			b.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := c.Remove(ctx); err != nil {
			b.Fatal(err)
		}
		c.Close()
		b.StartTimer()
	}
}
