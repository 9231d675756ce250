package node

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

func vf(kv ...string) []*api.VolumeFilter {
	var out []*api.VolumeFilter
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, &api.VolumeFilter{Key: kv[i], Value: kv[i+1]})
	}
	return out
}

func TestVolumeFilters(t *testing.T) {
	used := &api.Volume{Name: "data", Driver: "local", UsedBy: []string{"t1"}, Labels: map[string]string{"env": "prod"}}
	free := &api.Volume{Name: "cache", Driver: "local", Labels: map[string]string{"env": "dev", "tmp": ""}}
	anon := &api.Volume{Name: "0123abcd", Driver: "local", Anonymous: true, Labels: map[string]string{"com.docker.volume.anonymous": ""}}
	all := []*api.Volume{used, free, anon}
	names := func(match func(*api.Volume) bool) string {
		s := ""
		for _, v := range all {
			if match(v) {
				s += v.GetName() + " "
			}
		}
		return s
	}
	for _, c := range []struct {
		f    []*api.VolumeFilter
		want string
	}{
		{nil, "data cache 0123abcd "},
		{vf("dangling", "true"), "cache 0123abcd "},
		{vf("dangling", "0"), "data "},
		{vf("name", "ata"), "data "},
		{vf("name", "dat", "name", "cac"), "data cache "},
		{vf("label", "env"), "data cache "},
		{vf("label", "env=dev", "label", "tmp"), "cache "},
		{vf("label", "env=dev", "dangling", "false"), ""},
		{vf("driver", "local", "name", "0123"), "0123abcd "},
		{vf("driver", "nfs"), ""},
	} {
		m, err := volumeListFilter(c.f)
		if err != nil {
			t.Fatalf("%v: %v", c.f, err)
		}
		if got := names(m); got != c.want {
			t.Errorf("list %v: %q, want %q", c.f, got, c.want)
		}
	}
	for _, c := range []struct {
		f    []*api.VolumeFilter
		all  bool
		want string
	}{
		{nil, false, "data cache 0123abcd "[len("data cache "):]},
		{nil, true, "data cache 0123abcd "},
		{vf("label", "env"), true, "data cache "},
		{vf("label!", "env=prod"), true, "cache 0123abcd "},
		{vf("label!", "env"), false, "0123abcd "},
	} {
		m, err := volumePruneFilter(c.f, c.all)
		if err != nil {
			t.Fatalf("%v: %v", c.f, err)
		}
		if got := names(m); got != c.want {
			t.Errorf("prune %v all=%v: %q, want %q", c.f, c.all, got, c.want)
		}
	}
	if _, err := volumeListFilter(vf("colour", "blue")); !errdefs.IsInvalidArgument(err) {
		t.Errorf("unknown list filter: %v", err)
	}
	if _, err := volumeListFilter(vf("dangling", "maybe")); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad dangling: %v", err)
	}
	if _, err := volumePruneFilter(vf("name", "x"), false); !errdefs.IsInvalidArgument(err) {
		t.Errorf("prune takes no name filter: %v", err)
	}
}

// TestVolumesOnTheControlSocket: the Volumes service answers on the
// control socket, for this node only: outside a swarm it says why; with an
// executor that keeps no volumes (the fake one) it says so.
func TestVolumesOnTheControlSocket(t *testing.T) {
	n1 := startNode(t, t.TempDir(), freeAddr(t), newFakeExec())
	vols := api.NewVolumesClient(n1.conn)
	_, err := vols.List(n1.ctx(), &api.ListVolumesRequest{})
	if err = errdefs.FromGRPC(err); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "not in a swarm") {
		t.Fatalf("List outside a swarm: %v", err)
	}
	initSwarm(t, n1)
	eventually(t, "the executor answers for the volumes", func() error {
		_, err := vols.List(n1.ctx(), &api.ListVolumesRequest{})
		if err = errdefs.FromGRPC(err); !errors.Is(err, errdefs.ErrNotImplemented) {
			return fmt.Errorf("List with an executor without volumes: %v", err)
		}
		return nil
	})
	_, err = vols.List(n1.ctx(), &api.ListVolumesRequest{Filters: vf("colour", "blue")})
	if !errdefs.IsInvalidArgument(errdefs.FromGRPC(err)) {
		t.Errorf("List with a bad filter: %v", err)
	}
}
