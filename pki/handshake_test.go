package pki

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
)

// blockingCreds' handshakes wait for release, counting how many run at once.
type blockingCreds struct {
	credentials.TransportCredentials
	release       chan struct{}
	running, most atomic.Int32
}

func (b *blockingCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	n := b.running.Add(1)
	for {
		m := b.most.Load()
		if n <= m || b.most.CompareAndSwap(m, n) {
			break
		}
	}
	<-b.release
	b.running.Add(-1)
	return c, nil, nil
}

func (b *blockingCreds) Clone() credentials.TransportCredentials { return b }

// At most Concurrent handshakes run at once; a connection that waits past
// MaxWait for a turn is closed without one; a waiting one that gets a turn
// in time handshakes.
func TestLimitHandshakesBoundsAndSheds(t *testing.T) {
	inner := &blockingCreds{release: make(chan struct{})}
	lc := LimitHandshakes(inner, HandshakeLimit{Concurrent: 2, MaxWait: 300 * time.Millisecond})
	results := make(chan error, 10)
	for range 2 {
		go func() { _, _, err := lc.ServerHandshake(nil); results <- err }()
	}
	deadline := time.Now().Add(5 * time.Second)
	for inner.running.Load() != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the first two handshakes did not start")
		}
		time.Sleep(time.Millisecond)
	}
	// A third waits for a turn and, none coming within MaxWait, is shed.
	began := time.Now()
	if _, _, err := lc.ServerHandshake(nil); !errors.Is(err, errShed) {
		t.Fatalf("a handshake past the bound: %v, want it shed", err)
	}
	if waited := time.Since(began); waited < 300*time.Millisecond || waited > 3*time.Second {
		t.Fatalf("shed after %v, want MaxWait (300ms)", waited)
	}
	// A fourth gets the turn one of the first two frees.
	go func() { _, _, err := lc.ServerHandshake(nil); results <- err }()
	time.Sleep(50 * time.Millisecond)
	inner.release <- struct{}{}
	if err := <-results; err != nil {
		t.Fatalf("a first handshake: %v", err)
	}
	inner.release <- struct{}{}
	inner.release <- struct{}{}
	for range 2 {
		if err := <-results; err != nil {
			t.Fatalf("a handshake given a turn: %v", err)
		}
	}
	if most := inner.most.Load(); most != 2 {
		t.Errorf("%d handshakes ran at once, bound 2", most)
	}
	if st := lc.Stats(); st.Done != 3 || st.Shed != 1 {
		t.Errorf("stats %+v, want 3 done and 1 shed", st)
	}
	if c, ok := lc.Clone().(*LimitedCreds); !ok || c.slots != lc.slots {
		t.Error("a clone does not share the slots")
	}
}
