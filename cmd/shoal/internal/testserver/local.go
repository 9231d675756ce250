package testserver

import (
	"context"
	"github.com/shoal-project/shoal/errdefs"

	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

// Init answers with InitResp.
func (s *Server) Init(context.Context, *api.InitRequest) (*api.InitResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	return clone(s.InitResp), nil
}

// Join answers with JoinResp.
func (s *Server) Join(context.Context, *api.JoinRequest) (*api.JoinResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	return clone(s.JoinResp), nil
}

// Leave succeeds.
func (s *Server) Leave(context.Context, *api.LeaveRequest) (*api.LeaveResponse, error) {
	return &api.LeaveResponse{}, nil
}

// Info answers with Info.
func (s *Server) Info(context.Context, *api.InfoRequest) (*api.InfoResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	if s.InfoResp == nil {
		return &api.InfoResponse{}, nil
	}
	return clone(s.InfoResp), nil
}

// Unlock accepts UnlockKey (the node becomes ACTIVE) and refuses anything
// else as shoald does.
func (s *Server) Unlock(_ context.Context, req *api.UnlockRequest) (*api.UnlockResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	if req.GetUnlockKey() != s.UnlockKey || s.UnlockKey == "" {
		return nil, errdefs.ToGRPC(errdefs.New(errdefs.ErrInvalidArgument, "swarm could not be unlocked: invalid key provided"))
	}
	if s.InfoResp != nil {
		s.InfoResp.State = api.InfoResponse_ACTIVE
	}
	return &api.UnlockResponse{}, nil
}

// SubscribeLogs records the request and sends LogMessages.
func (s *Server) SubscribeLogs(req *api.SubscribeLogsRequest, stream api.Logs_SubscribeLogsServer) error {
	if err := s.record("SubscribeLogs", req); err != nil {
		return err
	}
	s.Mu.Lock()
	msgs := make([]*api.SubscribeLogsMessage, 0, len(s.LogMessages))
	for _, m := range s.LogMessages {
		msgs = append(msgs, proto.Clone(m).(*api.SubscribeLogsMessage))
	}
	s.Mu.Unlock()
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	return nil
}

// NotManager is the error a worker's control socket answers with.
var NotManager = errdefs.ToGRPC(errdefs.ErrNotManager)
