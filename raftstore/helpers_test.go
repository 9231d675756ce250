package raftstore

import "go.etcd.io/raft/v3/raftpb"

func raftpbMessage(from, to uint64) raftpb.Message {
	return raftpb.Message{Type: raftpb.MsgHeartbeat, From: from, To: to, Term: 1}
}
