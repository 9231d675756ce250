package daemontest

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Fixture is the store's content by kind, as tests write it: objects keep
// the versions and times they are given.
type Fixture struct {
	Nodes    []*api.Node
	Services []*api.Service
	Tasks    []*api.Task
	Clusters []*api.Cluster
	Secrets  []*api.Secret
	Configs  []*api.Config
	Networks []*api.Network
}

// Service returns the service whose ID or name is ref, nil if none.
func (f *Fixture) Service(ref string) *api.Service {
	for _, s := range f.Services {
		if s.GetId() == ref || s.GetSpec().GetAnnotations().GetName() == ref {
			return s
		}
	}
	return nil
}

// Task returns the task whose ID is id, nil if none.
func (f *Fixture) Task(id string) *api.Task {
	for _, t := range f.Tasks {
		if t.GetId() == id {
			return t
		}
	}
	return nil
}

// PutTask replaces the task of t's ID, or adds t.
func (f *Fixture) PutTask(t *api.Task) {
	for i, o := range f.Tasks {
		if o.GetId() == t.GetId() {
			f.Tasks[i] = t
			return
		}
	}
	f.Tasks = append(f.Tasks, t)
}

func (f *Fixture) objects() []raftstore.Object {
	var out []raftstore.Object
	add := func(o raftstore.Object) { out = append(out, o) }
	for _, o := range f.Nodes {
		add(o)
	}
	for _, o := range f.Services {
		add(o)
	}
	for _, o := range f.Tasks {
		add(o)
	}
	for _, o := range f.Clusters {
		add(o)
	}
	for _, o := range f.Secrets {
		add(o)
	}
	for _, o := range f.Configs {
		add(o)
	}
	for _, o := range f.Networks {
		add(o)
	}
	return out
}

// fixtureOf copies objects into a Fixture.
func fixtureOf(objs []raftstore.Object) *Fixture {
	f := &Fixture{}
	for _, o := range objs {
		switch o := proto.Clone(o).(type) {
		case *api.Node:
			f.Nodes = append(f.Nodes, o)
		case *api.Service:
			f.Services = append(f.Services, o)
		case *api.Task:
			f.Tasks = append(f.Tasks, o)
		case *api.Cluster:
			f.Clusters = append(f.Clusters, o)
		case *api.Secret:
			f.Secrets = append(f.Secrets, o)
		case *api.Config:
			f.Configs = append(f.Configs, o)
		case *api.Network:
			f.Networks = append(f.Networks, o)
		default:
			panic(fmt.Sprintf("daemontest: unknown object %T", o))
		}
	}
	return f
}

// Load replaces the store's content with f, as a snapshot install does.
// Writes through the Control API then get versions above every version in
// f.
func (d *Daemon) Load(f *Fixture) {
	objs := f.objects()
	var top uint64
	for _, o := range objs {
		top = max(top, o.GetMeta().GetVersion())
	}
	if err := d.prop.restore(objs, top); err != nil {
		panic(fmt.Sprintf("daemontest: load: %v", err))
	}
}

// Edit lets fn change a copy of the store's content, then loads it: the
// state the rest of the system (orchestrator, scheduler, workers) would
// have written, with the versions and times fn gives.
func (d *Daemon) Edit(fn func(*Fixture)) {
	objs, _ := d.Store.Objects()
	f := fixtureOf(objs)
	fn(f)
	d.Load(f)
}

// Read returns a copy of the store's content.
func (d *Daemon) Read() *Fixture {
	objs, _ := d.Store.Objects()
	return fixtureOf(objs)
}

// Update writes through the store as a manager's loop would: a
// transaction with new versions and the daemon's clock's time.
func (d *Daemon) Update(fn func(*raftstore.Tx) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	return d.Store.Update(ctx, fn)
}
