package daemontest

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
)

// localNode answers the node's own calls (Info, Init, Join, Leave, Unlock)
// from the Daemon's fields: those belong to shoald's node, not to the
// control plane, and the CLI's tests only need their answers. Unlock
// checks the key against UnlockKey, as a locked manager checks its keyring.
type localNode struct {
	api.UnimplementedLocalNodeServer
	d *Daemon
}

func clone[T proto.Message](m T) T { return proto.Clone(m).(T) }

func (l *localNode) Init(context.Context, *api.InitRequest) (*api.InitResponse, error) {
	l.d.Mu.Lock()
	defer l.d.Mu.Unlock()
	return clone(l.d.InitResp), nil
}

func (l *localNode) Join(context.Context, *api.JoinRequest) (*api.JoinResponse, error) {
	l.d.Mu.Lock()
	defer l.d.Mu.Unlock()
	return clone(l.d.JoinResp), nil
}

func (l *localNode) Leave(context.Context, *api.LeaveRequest) (*api.LeaveResponse, error) {
	return &api.LeaveResponse{}, nil
}

func (l *localNode) Info(context.Context, *api.InfoRequest) (*api.InfoResponse, error) {
	l.d.Mu.Lock()
	defer l.d.Mu.Unlock()
	if l.d.InfoResp == nil {
		return &api.InfoResponse{}, nil
	}
	return clone(l.d.InfoResp), nil
}

func (l *localNode) Unlock(_ context.Context, req *api.UnlockRequest) (*api.UnlockResponse, error) {
	got, err := pki.ParseUnlockKey(req.GetUnlockKey())
	if err != nil {
		return nil, err // shoald's answer to a malformed key
	}
	l.d.Mu.Lock()
	defer l.d.Mu.Unlock()
	want, err := pki.ParseUnlockKey(l.d.UnlockKey)
	if err != nil || string(got) != string(want) {
		return nil, pki.ErrInvalidUnlockKey
	}
	if l.d.InfoResp != nil {
		l.d.InfoResp.State = api.InfoResponse_ACTIVE
	}
	return &api.UnlockResponse{}, nil
}

// NotManager is the error a worker's control socket answers with.
var NotManager = errdefs.ErrNotManager
