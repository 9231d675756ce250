package manager

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/raftstore"
)

// members builds a membership: self first, reachable, then others with the
// reachability given.
func members(others ...bool) []raftstore.MemberStatus {
	out := []raftstore.MemberStatus{{NodeID: "self", Reachable: true, Leader: true}}
	for i, r := range others {
		out = append(out, raftstore.MemberStatus{NodeID: string(rune('a' + i)), Reachable: r})
	}
	return out
}

func TestQuorumAfterLeave(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members []raftstore.MemberStatus
		want    LeaveQuorum
	}{
		{"last manager", members(), LeaveQuorum{0, 0, false}},
		{"two, the other up", members(true), LeaveQuorum{1, 1, true}},
		{"two, the other down", members(false), LeaveQuorum{1, 0, false}},
		{"three, all up", members(true, true), LeaveQuorum{2, 2, true}},
		{"three, one down", members(true, false), LeaveQuorum{2, 1, false}},
		{"five, one down", members(true, true, true, false), LeaveQuorum{4, 3, true}},
		{"five, two down", members(true, true, false, false), LeaveQuorum{4, 2, false}},
		{"not a member", members(true, true)[1:], LeaveQuorum{2, 2, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := QuorumAfterLeave(tc.members, "self"); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestLeaveRefusal(t *testing.T) {
	for _, tc := range []struct {
		name     string
		members  []raftstore.MemberStatus
		want     []string
		dontWant []string
	}{
		{"last manager", members(), []string{"Removing the last manager erases all current state"}, []string{"demote"}},
		{"quorum kept", members(true, true), []string{"demote it first"}, []string{"Raft quorum"}},
		{"quorum lost", members(true, false), []string{"leaves 1 managers out of 3", "Without a Raft quorum", "demote it first"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := LeaveRefusal(tc.members, "self")
			if !errdefs.IsFailedPrecondition(err) {
				t.Fatalf("err = %v, want FailedPrecondition", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
			for _, w := range tc.dontWant {
				if strings.Contains(err.Error(), w) {
					t.Errorf("%q has %q", err, w)
				}
			}
		})
	}
}

// A manager that is not (or no longer) a raft member has nothing to leave:
// LeaveRaft returns at once, without asking anyone.
func TestLeaveRaftOfANonMemberReturnsAtOnce(t *testing.T) {
	b, _ := NewBootstrap(nil, clockwork.NewRealClock())
	m, err := New(Config{NodeID: b.NodeID, ClusterID: b.ClusterID, Addr: "127.0.0.1:1",
		RaftPath: filepath.Join(t.TempDir(), "raft.db"), Dial: bootDial, Logger: bootLogger(),
		Clock: clockwork.NewFakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.LeaveRaft(context.Background()); err != nil {
		t.Fatalf("LeaveRaft: %v", err)
	}
}
