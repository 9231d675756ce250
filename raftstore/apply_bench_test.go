package raftstore

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	api "github.com/shoal-project/shoal/proto"
)

// The store's own costs at scale (issue 13), on a standalone store (the
// state machine without raft). Run (results in BENCHMARKS.md, "Raft store:
// apply cost and memory per task"):
//
//	go test -run XXX -bench 'StoreHeap|StoreApply|StoreUpdate' -benchtime 3x -count 3 ./raftstore/
//
// StoreHeap reports the heap bytes per task of a store holding 100 services
// × 1,000 tasks, created and then moved to RUNNING through Update in
// transactions of BatchItems tasks (runtime.ReadMemStats after a GC, less
// the heap before the store was built). StoreApply times Apply alone of a
// transaction of 1,000 task creates or updates (the payload is encoded
// outside the timer): what every replica pays. StoreUpdate times the
// leader's whole write: Update builds the transaction, encodes it, and the
// standalone proposer decodes and applies it.

const benchBatch = 1000

// cpuClock sums the process's CPU time (user + system, all threads: GC
// included) over the timed parts of a benchmark: on a shared machine it
// moves less with the load than the wall time does.
type cpuClock struct {
	total, start time.Duration
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (c *cpuClock) Start() { c.start = processCPU() }
func (c *cpuClock) Stop()  { c.total += processCPU() - c.start }

// applyTimed encodes actions outside the timers, then applies them to s as
// the entry after index with the benchmark's timer and c running; it
// returns the new index.
func (c *cpuClock) applyTimed(b *testing.B, s *Store, index uint64, actions []*api.StoreAction) uint64 {
	data := encodeTx(b, actions)
	index++
	b.StartTimer()
	c.Start()
	if err := s.Apply(index, data); err != nil {
		b.Fatal(err)
	}
	c.Stop()
	return index
}

// report adds the CPU time per task.
func (c *cpuClock) report(b *testing.B, tasks int) {
	b.ReportMetric(float64(c.total.Nanoseconds())/float64(tasks), "cpu-ns/task")
}

// benchService is a service with a spec of the size a real one has: an
// image, environment, labels, resources, a restart policy, constraints, a
// network and a published port.
func benchService(i int) *api.Service {
	name := fmt.Sprintf("svc-%04d", i)
	return &api.Service{
		Id: fmt.Sprintf("service%021d", i), SpecVersion: 1,
		Spec: &api.ServiceSpec{
			Annotations: &api.Annotations{Name: name, Labels: map[string]string{"com.example.team": "payments", "com.example.tier": "web"}},
			Task: &api.TaskSpec{
				Container: &api.ContainerSpec{
					Image:  "registry.example.com/payments/" + name + ":1.24.3@sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
					Labels: map[string]string{"com.example.service": name},
					Args:   []string{"--listen", ":8080", "--log-level", "info"},
					Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
						"SERVICE=" + name, "UPSTREAM=http://backend:9000"},
					StopGracePeriod: durationpb.New(10 * time.Second),
				},
				Resources: &api.ResourceRequirements{
					Limits:       &api.Resources{NanoCpus: 5e8, MemoryBytes: 512 << 20},
					Reservations: &api.Resources{NanoCpus: 1e7, MemoryBytes: 16 << 20},
				},
				Restart:   &api.RestartPolicy{Condition: api.RestartPolicy_ANY, Delay: durationpb.New(5 * time.Second)},
				Placement: &api.Placement{Constraints: []string{"node.role==worker", "node.labels.zone!=zone-9"}},
				Networks:  []*api.NetworkAttachmentConfig{{Target: "network0000000000000000001", Aliases: []string{name}}},
			},
			Mode:     &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 1000}},
			Endpoint: &api.EndpointSpec{Ports: []*api.PortConfig{{Name: "http", TargetPort: 8080, PublishedPort: uint32(30000 + i)}}},
		},
		Endpoint: &api.Endpoint{
			Spec:       &api.EndpointSpec{Ports: []*api.PortConfig{{Name: "http", TargetPort: 8080, PublishedPort: uint32(30000 + i)}}},
			Ports:      []*api.PortConfig{{Name: "http", TargetPort: 8080, PublishedPort: uint32(30000 + i)}},
			VirtualIps: []*api.Endpoint_VirtualIP{{NetworkId: "network0000000000000000001", Addr: fmt.Sprintf("10.0.%d.%d/16", i/250, i%250+2)}},
		},
	}
}

// benchTask is a new task of svc as the orchestrator makes one: its own
// copies of the service's task spec, annotations and endpoint.
func benchTask(svc *api.Service, slot int, now time.Time) *api.Task {
	ts := timestamppb.New(now)
	return &api.Task{
		Id:        fmt.Sprintf("%.10s%015d", svc.Id[len(svc.Id)-10:], slot),
		ServiceId: svc.Id, Slot: uint64(slot), SpecVersion: svc.SpecVersion,
		Spec:               proto.Clone(svc.Spec.Task).(*api.TaskSpec),
		ServiceAnnotations: proto.Clone(svc.Spec.Annotations).(*api.Annotations),
		Endpoint:           proto.Clone(svc.Endpoint).(*api.Endpoint),
		DesiredState:       api.TaskState_RUNNING,
		Status:             &api.TaskStatus{State: api.TaskState_NEW, Timestamp: ts, Message: "created"},
		RestartWindowStart: ts,
	}
}

// running is t assigned to a node and reported running by it.
func running(t *api.Task, node string, now time.Time) *api.Task {
	c := CloneTask(t) // as the dispatcher does
	c.NodeId = node
	c.Status = &api.TaskStatus{State: api.TaskState_RUNNING, Timestamp: timestamppb.New(now), Message: "started",
		Container: &api.ContainerStatus{ContainerId: fmt.Sprintf("%064d", t.Slot), Pid: int32(1000 + t.Slot%30000)}}
	return c
}

// fillStore creates services × perService tasks through Update in
// transactions of benchBatch tasks, then moves each to RUNNING on one of
// 1,000 nodes.
func fillStore(tb testing.TB, s *Store, services, perService int) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	var tasks []*api.Task
	for i := range services {
		sv := benchService(i)
		if err := s.Update(ctx, func(tx *Tx) error { return tx.Create(sv) }); err != nil {
			tb.Fatal(err)
		}
		for j := range perService {
			tasks = append(tasks, benchTask(sv, j+1, now))
		}
	}
	for start := 0; start < len(tasks); start += benchBatch {
		batch := tasks[start:min(start+benchBatch, len(tasks))]
		if err := s.Update(ctx, func(tx *Tx) error {
			for _, t := range batch {
				if err := tx.Create(t); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			tb.Fatal(err)
		}
	}
	for start := 0; start < len(tasks); start += benchBatch {
		var ids []string
		for _, t := range tasks[start:min(start+benchBatch, len(tasks))] {
			ids = append(ids, t.Id)
		}
		if err := s.Update(ctx, func(tx *Tx) error {
			for i, id := range ids {
				if err := tx.Update(running(tx.Task(id), fmt.Sprintf("node%021d", (start+i)%1000), now)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			tb.Fatal(err)
		}
	}
}

func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// writeHeapProfile writes the live heap to file (SHOAL_BENCH_HEAPPROFILE
// with BenchmarkStoreHeap: where a stored task's bytes go).
func writeHeapProfile(b *testing.B, file string) {
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkStoreHeap(b *testing.B) {
	const services, perService = 100, 1000
	for range b.N {
		before := heapInUse()
		s := NewStandaloneStore(nil)
		fillStore(b, s, services, perService)
		after := heapInUse()
		if f := os.Getenv("SHOAL_BENCH_HEAPPROFILE"); f != "" {
			writeHeapProfile(b, f)
		}
		b.ReportMetric(float64(after-before)/float64(services*perService), "heap-B/task")
		runtime.KeepAlive(s)
	}
}

// applyBench encodes a transaction of benchBatch actions made by mk for
// the store as it is now.
func encodeTx(b *testing.B, actions []*api.StoreAction) []byte {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(&api.Transaction{Actions: actions, UnixNano: time.Now().UnixNano()})
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkStoreApply(b *testing.B) {
	now := time.Unix(1_800_000_000, 0)
	sv := benchService(1)
	b.Run("create_1000_tasks", func(b *testing.B) {
		b.ReportAllocs()
		var cpu cpuClock
		s := NewStandaloneStore(nil)
		if err := s.Update(context.Background(), func(tx *Tx) error { return tx.Create(sv) }); err != nil {
			b.Fatal(err)
		}
		index := s.Version()
		for i := range b.N {
			b.StopTimer()
			actions := make([]*api.StoreAction, benchBatch)
			for j := range actions {
				actions[j] = &api.StoreAction{Kind: api.StoreAction_CREATE, Object: Wrap(benchTask(sv, i*benchBatch+j+1, now))}
			}
			index = cpu.applyTimed(b, s, index, actions)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchBatch), "ns/task")
		cpu.report(b, b.N*benchBatch)
	})
	b.Run("update_1000_tasks", func(b *testing.B) {
		b.ReportAllocs()
		var cpu cpuClock
		s := NewStandaloneStore(nil)
		fillStore(b, s, 1, benchBatch)
		index := s.Version()
		var tasks []*api.Task
		s.View(func(tx ReadTx) { tasks = tx.Tasks() })
		b.ResetTimer()
		for i := range b.N {
			b.StopTimer()
			actions := make([]*api.StoreAction, len(tasks))
			for j, t := range tasks {
				u := running(t, fmt.Sprintf("node%021d", (i+j)%1000), now)
				actions[j] = &api.StoreAction{Kind: api.StoreAction_UPDATE, Object: Wrap(u), ExpectedVersion: index}
			}
			index = cpu.applyTimed(b, s, index, actions)
			b.StopTimer()
			s.View(func(tx ReadTx) { tasks = tx.Tasks() })
			b.StartTimer()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchBatch), "ns/task")
		cpu.report(b, b.N*benchBatch)
	})
}

func BenchmarkStoreUpdate(b *testing.B) {
	now := time.Unix(1_800_000_000, 0)
	b.Run("update_1000_tasks", func(b *testing.B) {
		b.ReportAllocs()
		var cpu cpuClock
		s := NewStandaloneStore(nil)
		fillStore(b, s, 1, benchBatch)
		var tasks []*api.Task
		s.View(func(tx ReadTx) { tasks = tx.Tasks() })
		b.ResetTimer()
		for i := range b.N {
			b.StopTimer()
			updated := make([]*api.Task, len(tasks))
			for j, t := range tasks {
				updated[j] = running(t, fmt.Sprintf("node%021d", (i+j+1)%1000), now)
			}
			b.StartTimer()
			cpu.Start()
			if err := s.Update(context.Background(), func(tx *Tx) error {
				for _, t := range updated {
					if err := tx.Update(t); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			cpu.Stop()
			b.StopTimer()
			s.View(func(tx ReadTx) { tasks = tx.Tasks() })
			b.StartTimer()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchBatch), "ns/task")
		cpu.report(b, b.N*benchBatch)
	})
}
