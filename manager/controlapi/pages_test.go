package controlapi

import (
	"context"
	"fmt"
	"sort"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/internal/ids"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// pager is one List call: it asks for the page after token and says how
// many objects came back and the token of the next page.
type pager func(token string) (resp proto.Message, names []string, next string, err error)

// allPages follows a list to its end, checking each answer against the
// message cap (and against limit when set), and returns the names in order.
func allPages(t *testing.T, list pager, limit int) (names []string, pages int) {
	t.Helper()
	token := ""
	for {
		resp, got, next, err := list(token)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if n := proto.Size(resp); n > api.MaxMessageBytes || limit > 0 && n > limit {
			t.Fatalf("page %d is %d bytes", pages, n)
		}
		if len(got) == 0 && next != "" {
			t.Fatalf("page %d is empty but says more follows", pages)
		}
		names = append(names, got...)
		if next == "" {
			return names, pages
		}
		token = next
	}
}

func checkAllOnce(t *testing.T, got []string, want int) {
	t.Helper()
	if len(got) != want {
		t.Fatalf("%d objects listed, want %d", len(got), want)
	}
	if !sort.StringsAreSorted(got) {
		t.Fatalf("pages out of order: %v", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i] == got[i-1] {
			t.Fatalf("%s listed twice", got[i])
		}
	}
}

// TestListsPageAcrossPages: every list is cut into pages no larger than
// the budget, and following the tokens gives every object once, in order.
func TestListsPageAcrossPages(t *testing.T) {
	srv, _ := newTestServer(t)
	srv.pageBytes = 4 << 10
	ctx := context.Background()
	for i := 0; i < 40; i++ {
		createService(t, srv, fmt.Sprintf("svc%02d", i))
		if _, err := srv.CreateConfig(ctx, &api.CreateConfigRequest{Spec: &api.ConfigSpec{
			Annotations: &api.Annotations{Name: fmt.Sprintf("cfg%02d", i)}, Data: make([]byte, 1000)}}); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.CreateSecret(ctx, &api.CreateSecretRequest{Spec: &api.SecretSpec{
			Annotations: &api.Annotations{Name: fmt.Sprintf("sec%02d", i)}, Data: make([]byte, 1000)}}); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.CreateNetwork(ctx, &api.CreateNetworkRequest{Spec: &api.NetworkSpec{
			Annotations: &api.Annotations{Name: fmt.Sprintf("net%02d", i), Labels: labelsOf(2, 100)}}}); err != nil {
			t.Fatal(err)
		}
	}
	err := srv.store.Update(ctx, func(tx *raftstore.Tx) error {
		for i := 0; i < 40; i++ {
			n := &api.Node{Id: ids.New(), Spec: &api.NodeSpec{Annotations: &api.Annotations{Labels: labelsOf(3, 100)}},
				Description: &api.NodeDescription{Hostname: fmt.Sprintf("host%02d", i%20)}} // hostnames repeat
			if err := tx.Create(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	budget := 6 << 10 // the page budget plus the counts and framing

	names, pages := allPages(t, func(tok string) (proto.Message, []string, string, error) {
		r, err := srv.ListServices(ctx, &api.ListServicesRequest{PageToken: tok})
		var out []string
		for _, s := range r.GetServices() {
			out = append(out, serviceName(s))
			if r.GetCounts()[s.Id] == nil {
				t.Errorf("no counts for %s", serviceName(s))
			}
		}
		return r, out, r.GetNextPageToken(), err
	}, budget)
	checkAllOnce(t, names, 40)
	if pages < 2 {
		t.Errorf("services came in %d pages", pages)
	}

	names, pages = allPages(t, func(tok string) (proto.Message, []string, string, error) {
		r, err := srv.ListConfigs(ctx, &api.ListConfigsRequest{PageToken: tok})
		var out []string
		for _, c := range r.GetConfigs() {
			out = append(out, configName(c))
		}
		return r, out, r.GetNextPageToken(), err
	}, budget)
	checkAllOnce(t, names, 40)
	if pages < 10 {
		t.Errorf("configs came in %d pages", pages)
	}

	names, _ = allPages(t, func(tok string) (proto.Message, []string, string, error) {
		r, err := srv.ListSecrets(ctx, &api.ListSecretsRequest{PageToken: tok})
		var out []string
		for _, s := range r.GetSecrets() {
			if len(s.GetSpec().GetData()) > 0 || len(s.GetSealed()) > 0 {
				t.Errorf("secret %s listed with its data", secretName(s))
			}
			out = append(out, secretName(s))
		}
		return r, out, r.GetNextPageToken(), err
	}, budget)
	checkAllOnce(t, names, 40)

	names, _ = allPages(t, func(tok string) (proto.Message, []string, string, error) {
		r, err := srv.ListNetworks(ctx, &api.ListNetworksRequest{PageToken: tok})
		var out []string
		for _, n := range r.GetNetworks() {
			out = append(out, networkName(n))
		}
		return r, out, r.GetNextPageToken(), err
	}, budget)
	checkAllOnce(t, names, 40)

	names, pages = allPages(t, func(tok string) (proto.Message, []string, string, error) {
		r, err := srv.ListNodes(ctx, &api.ListNodesRequest{PageToken: tok})
		var out []string
		for _, n := range r.GetNodes() {
			out = append(out, Hostname(n)+"/"+n.Id)
		}
		return r, out, r.GetNextPageToken(), err
	}, budget)
	checkAllOnce(t, names, 40)
	if pages < 3 {
		t.Errorf("nodes came in %d pages", pages)
	}

	// A filter applies across pages.
	names, _ = allPages(t, func(tok string) (proto.Message, []string, string, error) {
		r, err := srv.ListServices(ctx, &api.ListServicesRequest{PageToken: tok, Filters: &api.ListFilters{NamePrefixes: []string{"svc1"}}})
		var out []string
		for _, s := range r.GetServices() {
			out = append(out, serviceName(s))
		}
		return r, out, r.GetNextPageToken(), err
	}, budget)
	checkAllOnce(t, names, 10)
}

// TestManyMaxSizeConfigsList: configs at the size limit can be created,
// listed (eight of them were more than one message before) and used, seven
// at once, by a service.
func TestManyMaxSizeConfigsList(t *testing.T) {
	srv, _ := newTestServer(t)
	ctx := context.Background()
	var refs []*api.ConfigReference
	for i := 0; i < 12; i++ {
		name := fmt.Sprintf("big%02d", i)
		if _, err := srv.CreateConfig(ctx, &api.CreateConfigRequest{Spec: &api.ConfigSpec{
			Annotations: &api.Annotations{Name: name}, Data: make([]byte, api.MaxConfigDataBytes)}}); err != nil {
			t.Fatal(err)
		}
		if i < 7 {
			refs = append(refs, &api.ConfigReference{ConfigName: name, File: &api.FileTarget{Name: "/" + name}})
		}
	}
	names, pages := allPages(t, func(tok string) (proto.Message, []string, string, error) {
		r, err := srv.ListConfigs(ctx, &api.ListConfigsRequest{PageToken: tok})
		var out []string
		for _, c := range r.GetConfigs() {
			if len(c.GetSpec().GetData()) != api.MaxConfigDataBytes {
				t.Errorf("config %s listed with %d bytes of data", configName(c), len(c.GetSpec().GetData()))
			}
			out = append(out, configName(c))
		}
		return r, out, r.GetNextPageToken(), err
	}, 0)
	checkAllOnce(t, names, 12)
	t.Logf("12 configs of %s in %d pages", api.FormatBytes(api.MaxConfigDataBytes), pages)
	spec := validSpec()
	spec.Task.Container.Configs = refs
	if _, err := srv.CreateService(ctx, &api.CreateServiceRequest{Spec: spec}); err != nil {
		t.Fatalf("a service using 7 max-size configs: %v", err)
	}
}

// TestLargeServiceListsAndCounts: a service of 20,000 replicas is listed
// with its counts in one small answer, and its tasks in pages under the
// message cap.
func TestLargeServiceListsAndCounts(t *testing.T) {
	srv, _ := newTestServer(t)
	ctx := context.Background()
	const replicas = 20000
	spec := validSpec()
	spec.Annotations.Name = "big"
	spec.GetReplicated().Replicas = replicas
	// Loaded as a snapshot: 20,000 tasks at once.
	meta := &api.Meta{Version: 1}
	svc := &api.Service{Id: ids.New(), Meta: meta, Spec: spec, SpecVersion: 1}
	objs := []raftstore.Object{svc}
	for i := 0; i < replicas; i++ {
		state := api.TaskState_RUNNING
		if i%4 == 0 {
			state = api.TaskState_PENDING
		}
		objs = append(objs, &api.Task{Id: ids.New(), Meta: meta, ServiceId: svc.Id, Slot: uint64(i + 1), DesiredState: api.TaskState_RUNNING,
			Spec: spec.Task, ServiceAnnotations: &api.Annotations{Name: "big"}, Status: &api.TaskStatus{State: state}})
	}
	if err := srv.store.Restore(1, objs); err != nil {
		t.Fatal(err)
	}
	ls, err := srv.ListServices(ctx, &api.ListServicesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	c := ls.GetCounts()[svc.Id]
	if c.GetRunning() != replicas*3/4 || c.GetDesired() != replicas || proto.Size(ls) > 4<<10 {
		t.Fatalf("counts %v in an answer of %d bytes", c, proto.Size(ls))
	}
	ids, pages := allPages(t, func(tok string) (proto.Message, []string, string, error) {
		r, err := srv.ListTasks(ctx, &api.ListTasksRequest{PageToken: tok, Filters: &api.ListFilters{ServiceIds: []string{svc.Id}}})
		var out []string
		for _, tk := range r.GetTasks() {
			out = append(out, tk.Id)
		}
		return r, out, r.GetNextPageToken(), err
	}, api.MaxListPageBytes+64<<10)
	checkAllOnce(t, ids, replicas)
	if pages < 2 {
		t.Errorf("%d tasks in %d page", replicas, pages)
	}
	t.Logf("%d tasks in %d pages", replicas, pages)
}
