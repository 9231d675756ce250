package simagent

import (
	"context"
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

// slowDispatcher opens sessions, assigns one task each, answers
// heartbeats, and fails the first statusTimeouts status reports with
// DeadlineExceeded, as a leader slow to commit.
type slowDispatcher struct {
	api.UnimplementedDispatcherServer
	mu             sync.Mutex
	statusTimeouts int
	reports        int
}

func (d *slowDispatcher) Session(_ *api.SessionRequest, s grpc.ServerStreamingServer[api.SessionMessage]) error {
	if err := s.Send(&api.SessionMessage{SessionId: "s1"}); err != nil {
		return err
	}
	<-s.Context().Done()
	return nil
}

func (d *slowDispatcher) Heartbeat(context.Context, *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
	return &api.HeartbeatResponse{}, nil
}

func (d *slowDispatcher) Assignments(_ *api.AssignmentsRequest, s grpc.ServerStreamingServer[api.AssignmentsMessage]) error {
	t := &api.Task{Id: "t1", DesiredState: api.TaskState_RUNNING, Status: &api.TaskStatus{State: api.TaskState_ASSIGNED}}
	if err := s.Send(&api.AssignmentsMessage{Type: api.AssignmentsMessage_COMPLETE, Changes: []*api.AssignmentChange{{
		Action: api.AssignmentChange_UPDATE, Assignment: &api.Assignment{Item: &api.Assignment_Task{Task: t}},
	}}}); err != nil {
		return err
	}
	<-s.Context().Done()
	return nil
}

func (d *slowDispatcher) UpdateTaskStatus(context.Context, *api.UpdateTaskStatusRequest) (*api.UpdateTaskStatusResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reports++
	if d.reports <= d.statusTimeouts {
		return nil, status.Error(codes.DeadlineExceeded, "timed out waiting for the write to commit")
	}
	return &api.UpdateTaskStatusResponse{}, nil
}

// runSlow runs one node against a slowDispatcher until cond holds.
func runSlow(t *testing.T, timeouts int, cond func(Stats) bool) Stats {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	api.RegisterDispatcherServer(srv, &slowDispatcher{statusTimeouts: timeouts})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	f := New(Config{Managers: func() []string { return []string{lis.Addr().String()} }})
	defer f.Close()
	if _, err := f.Add("n1", "h1", func(_ context.Context, addr string) (*grpc.ClientConn, error) {
		return grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !cond(f.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("not within 20s: %+v", f.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return f.Stats()
}

// Reports that run out of time keep the session and go again; the third in
// a row ends it, as the real agent's MaxStatusTimeouts.
func TestReportTimeoutsKeepTheSessionUntilTooMany(t *testing.T) {
	st := runSlow(t, 2, func(st Stats) bool { return st.ReportedRunning == 1 })
	if st.SessionsOpened != 1 || st.ReportErrors != 2 || st.ReportCalls != 3 {
		t.Fatalf("two timeouts, then delivered in the same session: %+v", st)
	}
	st = runSlow(t, 3, func(st Stats) bool { return st.ReportedRunning == 1 })
	if st.SessionsOpened != 2 || st.Ends["report: DeadlineExceeded: timed out waiting for the write to commit"] != 1 {
		t.Fatalf("three timeouts end the session, and the next delivers: %+v", st)
	}
}
