package raftstore

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// killEntry is the deterministic content of entry i in the kill test.
func killEntry(i uint64) raftpb.Entry {
	return raftpb.Entry{Index: i, Term: 1, Data: bytes.Repeat([]byte{byte(i)}, int(i%700)+1)}
}

// The test binary started with SHOAL_WAL_KILL_PATH is the process
// TestKill9KeepsAcknowledgedWrites kills.
func init() {
	if path := os.Getenv("SHOAL_WAL_KILL_PATH"); path != "" {
		killChild(path)
	}
}

// killChild appends to the log at path, printing each index once its Save
// returned, and snapshots now and then (dropping segments).
func killChild(path string) {
	walSegmentSize = 64 << 10
	s, err := OpenEncryptedDiskStorage(path, bytes.Repeat([]byte{0x42}, 32))
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	next, _ := s.LastIndex()
	next++
	out := bufio.NewWriter(os.Stdout)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var es []raftpb.Entry
		for j := 0; j < int(next%7)+1; j++ {
			es = append(es, killEntry(next))
			next++
		}
		if err := s.Save(raftpb.HardState{Term: 1, Vote: 1, Commit: next - 1}, es, raftpb.Snapshot{}, true); err != nil {
			fmt.Fprintln(out, "save:", err)
			_ = out.Flush()
			os.Exit(2)
		}
		fmt.Fprintf(out, "acked %d\n", next-1)
		_ = out.Flush()
		if next%50 < 7 {
			if _, err := s.CreateSnapshot(next-1, &raftpb.ConfState{Voters: []uint64{1}}, []byte(fmt.Sprint(next-1)), 100); err != nil {
				fmt.Fprintln(out, "snapshot:", err)
				_ = out.Flush()
				os.Exit(2)
			}
		}
	}
	os.Exit(0)
}

// TestKill9KeepsAcknowledgedWrites: a process appending to the log is
// killed with SIGKILL at random moments, three times over the same log;
// each time the log opens, and holds every entry whose Save returned, with
// its content.
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft", "raft.db")
	var acked uint64
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "SHOAL_WAL_KILL_PATH="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		// The kill comes a while after the child's first acknowledged
		// write of the round, not after a fixed time from its start: a
		// loaded machine (make test, the race detector) may take longer
		// than that to start the child.
		var killAt time.Time
		roundAcked := false
		timeout := time.After(30 * time.Second)
		killed := false
		for done := false; !done; {
			var wait <-chan time.Time
			if !killed && roundAcked {
				wait = time.After(time.Until(killAt))
			}
			select {
			case l, ok := <-lines:
				if !ok {
					done = true
					break
				}
				if n, found := strings.CutPrefix(l, "acked "); found {
					v, _ := strconv.ParseUint(n, 10, 64)
					acked = max(acked, v)
					if !roundAcked {
						roundAcked = true
						killAt = time.Now().Add(time.Duration(100+round*150) * time.Millisecond)
					}
				} else {
					t.Logf("child: %s", l)
				}
			case <-wait:
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
			case <-timeout:
				_ = cmd.Process.Kill()
				t.Fatal("the child did not end within 30 s")
			}
		}
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: the child ended without being killed (%v)", round, err)
		}
		if acked == 0 {
			t.Fatalf("round %d: nothing acknowledged before the kill", round)
		}
		s, err := OpenEncryptedDiskStorage(path, testKey)
		if err != nil {
			t.Fatalf("round %d: the log does not open after kill -9: %v", round, err)
		}
		last, _ := s.LastIndex()
		first, _ := s.FirstIndex()
		hs, _, _ := s.InitialState()
		if last < acked || hs.Commit < acked {
			t.Fatalf("round %d: log ends at %d, commit %d; %d was acknowledged", round, last, hs.Commit, acked)
		}
		es, err := s.Entries(first, last+1, 1<<40)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			want := killEntry(e.Index)
			if e.Term != want.Term || !bytes.Equal(e.Data, want.Data) {
				t.Fatalf("round %d: entry %d differs", round, e.Index)
			}
		}
		seqs, _ := listSegments(path)
		t.Logf("round %d: %d acknowledged, log %d..%d in %d segments", round, acked, first, last, len(seqs))
		_ = s.Close()
	}
}
