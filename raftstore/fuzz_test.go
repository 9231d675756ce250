package raftstore

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

// FuzzDecodeMessage: raft frames arrive from the network.
func FuzzDecodeMessage(f *testing.F) {
	m := raftpb.Message{Type: raftpb.MsgApp, From: 1, To: 2, Term: 3, Index: 4, Entries: []raftpb.Entry{{Index: 5, Term: 3, Data: []byte("x")}}}
	b, _ := m.Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMessage(data)
		if err != nil {
			return
		}
		if m.From == 0 {
			t.Fatal("accepted a message without a sender")
		}
		if _, err := m.Marshal(); err != nil {
			t.Fatalf("decoded message does not re-encode: %v", err)
		}
	})
}

// FuzzDecodeSnapshot: snapshot data arrives from the network and the disk.
func FuzzDecodeSnapshot(f *testing.F) {
	s := &api.StoreSnapshot{Version: snapshotVersion, Objects: []*api.StoreObject{Wrap(svc("a", "a"))}, Members: []*api.RaftMember{{RaftId: 1, NodeId: "n"}}}
	b, _ := proto.Marshal(s)
	f.Add(b)
	a := svc("a", "a")
	a.Spec.Task = &api.TaskSpec{Container: &api.ContainerSpec{Image: "busybox"}}
	s.Objects = []*api.StoreObject{Wrap(a), Wrap(&api.Task{Id: "t1", ServiceId: "a", Spec: a.Spec.Task}), Wrap(&api.Task{Id: "t2", ServiceId: "a", Spec: a.Spec.Task})}
	b, _ = proto.Marshal(s)
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		snap, err := DecodeSnapshot(data)
		_, shared, errShared := DecodeSnapshotObjects(data)
		if err != nil {
			if errShared == nil {
				t.Fatalf("DecodeSnapshotObjects accepted what DecodeSnapshot refused: %v", err)
			}
			return
		}
		st := NewStore(nil)
		var objs []Object
		for _, so := range snap.Objects {
			if o := Unwrap(so); o != nil {
				objs = append(objs, o)
			}
		}
		// The same objects, or an error for an empty one.
		if (errShared == nil) != (len(objs) == len(snap.Objects)) {
			t.Fatalf("DecodeSnapshotObjects: %v, with %d of %d objects empty", errShared, len(snap.Objects)-len(objs), len(snap.Objects))
		}
		for i := range shared {
			if !proto.Equal(shared[i], objs[i]) {
				t.Fatalf("object %d decoded as %v, want %v", i, shared[i], objs[i])
			}
		}
		_ = st.Restore(1, objs) // must not panic; duplicates are an error
	})
}

// FuzzSealedRecord: every record read from the raft log file goes through
// unseal (in clear or encrypted) and a protobuf decoder.
func FuzzSealedRecord(f *testing.F) {
	var plain *recordCipher
	enc, err := newRecordCipher(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		f.Fatal(err)
	}
	k := binary.BigEndian.AppendUint64(nil, 7)
	e := raftpb.Entry{Index: 7, Term: 2, Data: []byte("payload")}
	b, _ := e.Marshal()
	f.Add(plain.seal(bucketEntries, k, b))
	f.Add(enc.seal(bucketEntries, k, b))
	hs := raftpb.HardState{Term: 2, Vote: 1, Commit: 7}
	hb, _ := hs.Marshal()
	f.Add(plain.seal(bucketEntries, k, hb))
	f.Add(enc.seal(bucketEntries, k, hb))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := plain.unseal(bucketEntries, k, data)
		if err == nil && !bytes.Equal(plain.seal(bucketEntries, k, b), data) {
			t.Fatal("unseal accepted a record that does not re-seal identically")
		}
		if err != nil {
			if b, err = enc.unseal(bucketEntries, k, data); err != nil {
				return
			}
		}
		var e raftpb.Entry
		_ = e.Unmarshal(b)
		var h raftpb.HardState
		_ = h.Unmarshal(b)
		var hdr snapshotHeader
		if hdr.decode(b) == nil {
			var md raftpb.SnapshotMetadata
			_ = md.Unmarshal(hdr.meta)
		}
	})
}

// FuzzApplyTransaction: a transaction's actions are validated on apply; a
// decodable transaction must never panic the store or leave it half-applied.
func FuzzApplyTransaction(f *testing.F) {
	tx := &api.Transaction{Actions: []*api.StoreAction{
		{Kind: api.StoreAction_CREATE, Object: Wrap(svc("a", "web"))},
		{Kind: api.StoreAction_UPDATE, Object: Wrap(svc("a", "web")), ExpectedVersion: 1},
		{Kind: api.StoreAction_DELETE, Object: Wrap(&api.Task{Id: "t"})},
	}}
	b, _ := proto.Marshal(tx)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var tx api.Transaction
		if proto.Unmarshal(data, &tx) != nil {
			return
		}
		s := NewStore(nil)
		before := s.Hash()
		if err := s.Apply(1, data); err != nil && s.Hash() != before {
			t.Fatal("a failed transaction changed the store")
		}
	})
}

// FuzzOpenStorage: a raft log file with arbitrary bytes must be refused with
// an error, never crash the process.
func FuzzOpenStorage(f *testing.F) {
	dir := f.TempDir()
	p := filepath.Join(dir, "seed.db")
	s, err := OpenDiskStorage(p)
	if err != nil {
		f.Fatal(err)
	}
	_ = s.Save(raftpb.HardState{Term: 1, Commit: 2}, ents(1, 2, 1), raftpb.Snapshot{}, true)
	_ = s.Close()
	seed, _ := os.ReadFile(p)
	f.Add(seed, uint16(100), byte(1))
	f.Fuzz(func(t *testing.T, file []byte, at uint16, flip byte) {
		if len(file) > 1<<20 {
			return
		}
		b := append([]byte(nil), file...)
		if int(at) < len(b) {
			b[at] ^= flip
		}
		p := filepath.Join(t.TempDir(), "raft.db")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if s, err := OpenDiskStorage(p); err == nil {
			_ = s.Close()
		}
	})
}
