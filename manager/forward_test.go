package manager

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// leaderThatDies serves Control on loopback; every call kills the server
// (as kill -9 would) before it answers.
type leaderThatDies struct {
	api.UnimplementedControlServer
	srv *grpc.Server
}

func (l *leaderThatDies) RemoveService(context.Context, *api.RemoveServiceRequest) (*api.RemoveServiceResponse, error) {
	l.srv.Stop()
	select {} // never answers
}

func (l *leaderThatDies) ListServices(context.Context, *api.ListServicesRequest) (*api.ListServicesResponse, error) {
	l.srv.Stop()
	select {}
}

// TestForwardToADyingLeader: a leader that goes away during a forwarded
// call gives a sentence saying what happened and whether the change may
// have been applied, not "EOF" or "transport is closing".
func TestForwardToADyingLeader(t *testing.T) {
	for _, c := range []struct {
		method string
		req    any
		want   string
	}{
		{"/shoal.v1.Control/RemoveService", &api.RemoveServiceRequest{ServiceId: "web"}, "the change may or may not have been applied"},
		{"/shoal.v1.Control/ListServices", &api.ListServicesRequest{}, "nothing was changed: retry"},
	} {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		leader := &leaderThatDies{srv: grpc.NewServer()}
		api.RegisterControlServer(leader.srv, leader)
		go func() { _ = leader.srv.Serve(lis) }()
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = ForwardUnary(ctx, conn, c.method, c.req, "")
		if err == nil {
			t.Fatal("the call succeeded")
		}
		got := explainForward(ctx, c.method, "the leader n1 at "+lis.Addr().String(), "2 of 3 managers reachable", err)
		cancel()
		conn.Close()
		msg := got.Error()
		t.Logf("%s: %q -> %q", c.method, err, msg)
		if !errdefs.IsUnavailable(got) || !strings.HasPrefix(msg, "the call was forwarded to the leader n1 at ") || !strings.Contains(msg, "closed the connection during the call") ||
			!strings.Contains(msg, c.want) || !strings.Contains(msg, "(2 of 3 managers reachable)") {
			t.Errorf("%s: raw %q became %q", c.method, err, msg)
		}
	}
}

// TestForwardDeadline: a leader that does not answer before the deadline.
func TestForwardDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	got := explainForward(ctx, "/shoal.v1.Control/CreateService", "the leader n1 at 10.0.0.1:4242", "quorum lost: 1 of 3 managers reachable",
		errdefs.DeadlineExceeded("context deadline exceeded"))
	want := "the leader n1 at 10.0.0.1:4242 did not answer before the call's deadline: the change may or may not have been applied: " +
		"check the current state (e.g. `shoal service ls`, `shoal service ps`) before retrying (quorum lost: 1 of 3 managers reachable)"
	if got.Error() != want || !errors.Is(got, errdefs.ErrDeadlineExceeded) {
		t.Errorf("got %q", got)
	}
}

// TestDecodeNamesTheField: a request whose text is not UTF-8 (from a client
// that does not check) is refused with the field named.
func TestDecodeNamesTheField(t *testing.T) {
	var ann []byte
	ann = protowire.AppendTag(ann, 1, protowire.BytesType)
	ann = protowire.AppendString(ann, "web\xff")
	var spec []byte
	spec = protowire.AppendTag(spec, 1, protowire.BytesType)
	spec = protowire.AppendBytes(spec, ann)
	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	req = protowire.AppendBytes(req, spec)
	err := passthroughCodec{}.Unmarshal(req, &api.CreateServiceRequest{})
	want := `field spec.annotations.name of CreateServiceRequest is not valid UTF-8 ("web\xff"): text fields must be UTF-8`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}
