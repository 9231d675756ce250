package raftstore

import (
	"crypto/rand"
	"encoding/base64"

	"go.etcd.io/raft/v3/raftpb"
)

func raftpbMessage(from, to uint64) raftpb.Message {
	return raftpb.Message{Type: raftpb.MsgHeartbeat, From: from, To: to, Term: 1}
}

// randomText is n bytes of random base64: text that deflate cannot shrink
// much, for tests whose entries or snapshots must really be large.
func randomText(n int) string {
	b := make([]byte, n*3/4+3)
	_, _ = rand.Read(b)
	return base64.RawStdEncoding.EncodeToString(b)[:n]
}
