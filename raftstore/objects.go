package raftstore

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

// Object is any stored object: Cluster, Node, Service, Task, Network, Secret
// or Config.
type Object interface {
	proto.Message
	GetId() string
	GetMeta() *api.Meta
}

// Kinds of objects, as used in watch filters and table names.
const (
	KindCluster = "cluster"
	KindNode    = "node"
	KindService = "service"
	KindTask    = "task"
	KindNetwork = "network"
	KindSecret  = "secret"
	KindConfig  = "config"
)

// Kinds lists every kind in a fixed order (snapshots and hashes use it).
var Kinds = []string{KindCluster, KindNode, KindService, KindTask, KindNetwork, KindSecret, KindConfig}

// KindOf returns the kind of a stored object.
func KindOf(o Object) string {
	switch o.(type) {
	case *api.Cluster:
		return KindCluster
	case *api.Node:
		return KindNode
	case *api.Service:
		return KindService
	case *api.Task:
		return KindTask
	case *api.Network:
		return KindNetwork
	case *api.Secret:
		return KindSecret
	case *api.Config:
		return KindConfig
	}
	panic(fmt.Sprintf("raftstore: %T is not a stored object", o))
}

func setMeta(o Object, m *api.Meta) {
	switch v := o.(type) {
	case *api.Cluster:
		v.Meta = m
	case *api.Node:
		v.Meta = m
	case *api.Service:
		v.Meta = m
	case *api.Task:
		v.Meta = m
	case *api.Network:
		v.Meta = m
	case *api.Secret:
		v.Meta = m
	case *api.Config:
		v.Meta = m
	default:
		panic(fmt.Sprintf("raftstore: %T is not a stored object", o))
	}
}

// Wrap puts an object into the StoreObject envelope.
func Wrap(o Object) *api.StoreObject {
	switch v := o.(type) {
	case *api.Cluster:
		return &api.StoreObject{Object: &api.StoreObject_Cluster{Cluster: v}}
	case *api.Node:
		return &api.StoreObject{Object: &api.StoreObject_Node{Node: v}}
	case *api.Service:
		return &api.StoreObject{Object: &api.StoreObject_Service{Service: v}}
	case *api.Task:
		return &api.StoreObject{Object: &api.StoreObject_Task{Task: v}}
	case *api.Network:
		return &api.StoreObject{Object: &api.StoreObject_Network{Network: v}}
	case *api.Secret:
		return &api.StoreObject{Object: &api.StoreObject_Secret{Secret: v}}
	case *api.Config:
		return &api.StoreObject{Object: &api.StoreObject_Config{Config: v}}
	}
	panic(fmt.Sprintf("raftstore: %T is not a stored object", o))
}

// Unwrap takes an object out of its envelope; nil for an empty envelope.
func Unwrap(so *api.StoreObject) Object {
	switch v := so.GetObject().(type) {
	case *api.StoreObject_Cluster:
		return v.Cluster
	case *api.StoreObject_Node:
		return v.Node
	case *api.StoreObject_Service:
		return v.Service
	case *api.StoreObject_Task:
		return v.Task
	case *api.StoreObject_Network:
		return v.Network
	case *api.StoreObject_Secret:
		return v.Secret
	case *api.StoreObject_Config:
		return v.Config
	}
	return nil
}

// nameOf returns the unique name of objects whose names are unique.
func nameOf(o Object) (string, bool) {
	switch v := o.(type) {
	case *api.Cluster:
		return v.GetSpec().GetAnnotations().GetName(), true
	case *api.Service:
		return v.GetSpec().GetAnnotations().GetName(), true
	case *api.Network:
		return v.GetSpec().GetAnnotations().GetName(), true
	case *api.Secret:
		return v.GetSpec().GetAnnotations().GetName(), true
	case *api.Config:
		return v.GetSpec().GetAnnotations().GetName(), true
	}
	return "", false
}

// CloneTask returns a copy of t to change and write back, cheaper than
// proto.Clone: the copy shares t's spec, service annotations and endpoint,
// which stored objects never modify (and which the store shares between
// the tasks of a service anyway), and deep-copies everything else. Replace
// those three in the copy; never modify them in place.
// TestCloneTaskCopiesEveryField fails when a field is added to Task.
func CloneTask(t *api.Task) *api.Task {
	if t == nil {
		return nil
	}
	if len(t.ProtoReflect().GetUnknown()) > 0 {
		return proto.Clone(t).(*api.Task) // keeps a newer version's fields
	}
	c := &api.Task{
		Id:                 t.Id,
		Meta:               cloneOf(t.Meta),
		Spec:               t.Spec,
		SpecVersion:        t.SpecVersion,
		ServiceId:          t.ServiceId,
		Slot:               t.Slot,
		NodeId:             t.NodeId,
		Annotations:        cloneOf(t.Annotations),
		ServiceAnnotations: t.ServiceAnnotations,
		Status:             cloneOf(t.Status),
		DesiredState:       t.DesiredState,
		Endpoint:           t.Endpoint,
		JobIteration:       t.JobIteration,
		LocalAddress:       t.LocalAddress,
		Restarts:           t.Restarts,
		RestartWindowStart: cloneOf(t.RestartWindowStart),
		ServiceRemoved:     t.ServiceRemoved,
	}
	if t.Networks != nil {
		c.Networks = make([]*api.NetworkAttachment, len(t.Networks))
		for i, n := range t.Networks {
			c.Networks[i] = cloneOf(n)
		}
	}
	return c
}

// cloneOf is proto.Clone, typed; nil stays nil.
func cloneOf[M interface {
	comparable
	proto.Message
}](m M) M {
	var zero M
	if m == zero {
		return zero
	}
	return proto.Clone(m).(M)
}
