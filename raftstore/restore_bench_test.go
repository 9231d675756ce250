package raftstore

import (
	"testing"

	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

// BenchmarkRestoreAt100kTasks times what a member pays to load a snapshot
// of 100 services × 1,000 running tasks (on 1,000 nodes): inflating and
// decoding the snapshot's data (DecodeSnapshotObjects, as restoreSnapshot) and loading the objects
// into a new store (Store.Restore: every table and index), as a restarted
// manager or a follower sent a snapshot does before it applies anything.
// ns/task is the op's time per task. Run:
//
//	go test -run XXX -bench RestoreAt100kTasks -benchtime 5x -count 3 ./raftstore/
func BenchmarkRestoreAt100kTasks(b *testing.B) {
	src := NewStandaloneStore(nil)
	fillStore(b, src, 100, 1000)
	objs, version := src.Objects()
	snap := &api.StoreSnapshot{Version: snapshotVersion}
	for _, o := range objs {
		snap.Objects = append(snap.Objects, Wrap(o))
	}
	raw, err := proto.Marshal(snap)
	if err != nil {
		b.Fatal(err)
	}
	data := encodeSnapshotData(raw)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		_, restored, err := DecodeSnapshotObjects(data)
		if err != nil {
			b.Fatal(err)
		}
		s := NewStandaloneStore(nil)
		if err := s.Restore(version, restored); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(objs)), "ns/object")
}
