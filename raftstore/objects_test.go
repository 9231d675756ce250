package raftstore

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	api "github.com/shoal-project/shoal/proto"
)

// CloneTask copies every field of a task: equal content, the spec, service
// annotations and endpoint shared, every other message its own.
func TestCloneTaskCopiesEveryField(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tk := running(benchTask(benchService(1), 1, now), "node1", now)
	tk.Meta = &api.Meta{Version: 3}
	tk.Annotations = &api.Annotations{Name: "t", Labels: map[string]string{"a": "b"}}
	tk.Networks = []*api.NetworkAttachment{{}}
	tk.JobIteration, tk.LocalAddress, tk.Restarts, tk.ServiceRemoved = 2, "10.0.0.1", 4, true
	// Every field is set, so a field CloneTask forgets makes them differ.
	fields := tk.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if !tk.ProtoReflect().Has(fields.Get(i)) {
			t.Fatalf("the test leaves %s unset: set it", fields.Get(i).Name())
		}
	}
	c := CloneTask(tk)
	if !proto.Equal(c, tk) {
		t.Fatalf("clone differs:\n%v\n%v", c, tk)
	}
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Message() == nil {
			continue
		}
		shared := map[protoreflect.Name]bool{"spec": true, "service_annotations": true, "endpoint": true}[fd.Name()]
		var same bool
		if fd.IsList() {
			same = c.ProtoReflect().Get(fd).List().Get(0).Message().Interface() == tk.ProtoReflect().Get(fd).List().Get(0).Message().Interface()
		} else {
			same = c.ProtoReflect().Get(fd).Message().Interface() == tk.ProtoReflect().Get(fd).Message().Interface()
		}
		if same != shared {
			t.Errorf("%s: shared %v, want %v", fd.Name(), same, shared)
		}
	}
	if CloneTask(nil) != nil {
		t.Error("a nil task cloned to something")
	}
}
