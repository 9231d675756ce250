package raftstore

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Reads that arrive while a ReadIndex round is in flight share the next
// round: 100 reads held behind a leader cut off from its followers cost two
// rounds, and each sees every write acknowledged before it was called.
func TestConcurrentReadsShareReadIndexRounds(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.ElectionTick = 100 }) // 2 s: the cut below does not depose
	l := c.leader()
	if err := c.write("before"); err != nil {
		t.Fatal(err)
	}
	rounds := l.node.readRounds.Load()
	c.net.Isolate(l.addr)
	const readers = 100
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The first read's round is in flight (cut off) before the others come.
	wg.Add(1)
	go func() { defer wg.Done(); errs <- l.node.LinearizableRead(ctx) }()
	c.eventually(time.Second, "the first round sent", func() bool { return l.node.readRounds.Load() == rounds+1 })
	for range readers - 1 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- l.node.LinearizableRead(ctx) }()
	}
	time.Sleep(100 * time.Millisecond)
	c.net.Heal()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := l.node.readRounds.Load() - rounds; got != 2 {
		t.Fatalf("%d reads took %d ReadIndex rounds, want 2", readers, got)
	}

	// Linearizable on every member under concurrent writes: a read started
	// after a write was acknowledged sees it.
	var acked sync.Map
	var wwg sync.WaitGroup
	stop := make(chan struct{})
	wwg.Add(1)
	go func() {
		defer wwg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("w%04d", i)
			if err := c.write(name); err != nil {
				t.Error(err)
				return
			}
			acked.Store(i, name)
		}
	}()
	var rwg sync.WaitGroup
	for r := range 16 {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			m := c.members[r%len(c.members)]
			for range 30 {
				var want []string
				acked.Range(func(_, v any) bool { want = append(want, v.(string)); return true })
				if err := m.node.LinearizableRead(ctx); err != nil {
					t.Error(err)
					return
				}
				m.store.View(func(tx ReadTx) {
					for _, name := range want {
						if tx.ServiceByName(name) == nil {
							t.Errorf("member %d: a linearizable read missed %s, acknowledged before it", m.idx, name)
						}
					}
				})
			}
		}()
	}
	rwg.Wait()
	close(stop)
	wwg.Wait()
}
