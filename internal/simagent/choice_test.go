package simagent

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	api "github.com/shoal-project/shoal/proto"
)

// choiceServer counts the sessions each node (by hostname) opens with it.
// It refuses every session (refuse), or opens it and ends it through the
// assignments stream with the given error.
type choiceServer struct {
	api.UnimplementedDispatcherServer
	refuse bool
	end    error

	mu       sync.Mutex
	sessions map[string]int
}

func (s *choiceServer) Session(req *api.SessionRequest, stream api.Dispatcher_SessionServer) error {
	s.mu.Lock()
	s.sessions[req.GetDescription().GetHostname()]++
	s.mu.Unlock()
	if s.refuse {
		return status.Error(codes.Unavailable, "refused")
	}
	if err := stream.Send(&api.SessionMessage{SessionId: "s"}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func (s *choiceServer) Assignments(*api.AssignmentsRequest, api.Dispatcher_AssignmentsServer) error {
	return s.end
}

func (s *choiceServer) counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.sessions {
		out[k] = v
	}
	return out
}

func choiceFleet(t *testing.T, servers ...*choiceServer) *Fleet {
	var addrs []string
	for _, srv := range servers {
		srv.sessions = map[string]int{}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer()
		api.RegisterDispatcherServer(s, srv)
		go func() { _ = s.Serve(lis) }()
		t.Cleanup(s.Stop)
		addrs = append(addrs, lis.Addr().String())
	}
	f := New(Config{Managers: func() []string { return addrs }, BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond})
	t.Cleanup(f.Close)
	dial := func(_ context.Context, addr string) (*grpc.ClientConn, error) {
		return grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	for i := range 10 {
		if _, err := f.Add(fmt.Sprint("n", i), fmt.Sprint("h", i), dial); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func total(m map[string]int) (n int) {
	for _, v := range m {
		n += v
	}
	return n
}

// A simulated node chooses managers as the real agent does: one that keeps
// refusing sessions is tried less and less (a round-robin node gave it a
// third of its attempts: after a leader kill at 10,000 nodes, that was a
// storm of TLS handshakes on the restarted manager), and one that only
// forgot the session is asked again at once.
func TestNodesChooseManagersAsTheAgentDoes(t *testing.T) {
	t.Run("a refusing manager is tried less", func(t *testing.T) {
		bad := &choiceServer{refuse: true}
		b := &choiceServer{end: status.Error(codes.Unavailable, "session lost")}
		c := &choiceServer{end: status.Error(codes.Unavailable, "session lost")}
		f := choiceFleet(t, bad, b, c)
		deadline := time.Now().Add(20 * time.Second)
		for total(b.counts())+total(c.counts()) < 1000 {
			if time.Now().After(deadline) {
				t.Fatalf("sessions after 20s: refusing %d, others %d, %d", total(bad.counts()), total(b.counts()), total(c.counts()))
			}
			time.Sleep(20 * time.Millisecond)
		}
		f.Close()
		nb, ng := total(bad.counts()), total(b.counts())+total(c.counts())
		// Round robin: a third of all attempts. The agent's choice: a few
		// at the start, then a share halved with each refusal (about 10
		// a node over 100 attempts).
		if 5*nb > ng {
			t.Fatalf("the refusing manager got %d sessions against %d for the two others", nb, ng)
		}
		t.Logf("refusing manager: %d sessions, the two others: %d", nb, ng)
	})
	t.Run("a forgotten session is opened again with the same manager", func(t *testing.T) {
		servers := []*choiceServer{
			{end: status.Error(codes.NotFound, "session invalid: open a new session")},
			{end: status.Error(codes.NotFound, "session invalid: open a new session")},
			{end: status.Error(codes.NotFound, "session invalid: open a new session")},
		}
		f := choiceFleet(t, servers...)
		deadline := time.Now().Add(20 * time.Second)
		for {
			n := 0
			for _, s := range servers {
				n += total(s.counts())
			}
			if n >= 40 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d sessions after 20s", n)
			}
			time.Sleep(20 * time.Millisecond)
		}
		f.Close()
		seen := map[string]int{}
		for _, s := range servers {
			for h := range s.counts() {
				seen[h]++
			}
		}
		for h, n := range seen {
			if n > 1 {
				t.Errorf("node %s opened sessions with %d managers; a forgotten session goes back to the same one", h, n)
			}
		}
	})
}
