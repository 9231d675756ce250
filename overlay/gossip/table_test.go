package gossip

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func ent(owner string, gen, ver uint64, key, ip string) Entry {
	return Entry{Network: "n1", Key: key, Owner: owner, Generation: gen, Version: ver, IP: ip}
}

func liveIPs(t *table) map[string]string {
	out := map[string]string{}
	for _, e := range t.live("n1") {
		out[e.Owner+"/"+e.Key] = e.IP
	}
	return out
}

func TestTableOrdering(t *testing.T) {
	tb := newTable("a", 100)
	f := tb.apply(ent("b", 5, 2, "k", "ip2"), t0, true)
	if _, ok := f.changed["n1"]; !ok || len(f.broadcast) != 1 {
		t.Fatalf("new entry: changed %v, broadcast %d; want n1 changed and one re-broadcast", f.changed, len(f.broadcast))
	}
	// Older version ignored, equal ignored.
	for _, e := range []Entry{ent("b", 5, 1, "k", "old"), ent("b", 5, 2, "k", "same-version")} {
		if f := tb.apply(e, t0, true); len(f.changed) != 0 || len(f.broadcast) != 0 {
			t.Fatalf("apply %+v: changed %v broadcast %d, want nothing", e, f.changed, len(f.broadcast))
		}
	}
	if got := liveIPs(tb)["b/k"]; got != "ip2" {
		t.Fatalf("b/k = %q, want ip2", got)
	}
	// Higher version wins; a tombstone hides it.
	tb.apply(ent("b", 5, 3, "k", "ip3"), t0, true)
	tb.apply(ent("b", 5, 4, "k2", "x"), t0, true)
	ts := ent("b", 5, 5, "k", "")
	ts.Deleted = true
	tb.apply(ts, t0, true)
	if got := liveIPs(tb); len(got) != 1 || got["b/k2"] != "x" {
		t.Fatalf("live after tombstone = %v, want only b/k2", got)
	}
	// The same key under another owner is another entry.
	tb.apply(ent("c", 1, 1, "k2", "y"), t0, true)
	if got := liveIPs(tb); len(got) != 2 || got["c/k2"] != "y" {
		t.Fatalf("live = %v, want b/k2 and c/k2", got)
	}
	// A newer generation of b drops all of b's older entries, and b's older
	// generation is ignored from then on.
	tb.apply(ent("b", 6, 1, "k3", "z"), t0, true)
	if got := liveIPs(tb); len(got) != 2 || got["b/k3"] != "z" || got["c/k2"] != "y" {
		t.Fatalf("live after new generation = %v, want b/k3 and c/k2", got)
	}
	if f := tb.apply(ent("b", 5, 9, "k4", "stale"), t0, true); len(f.changed) != 0 {
		t.Fatalf("old generation accepted: %v", liveIPs(tb))
	}
}

func TestTableOwnStaleCopies(t *testing.T) {
	tb := newTable("a", 100)
	tb.publish(Entry{Network: "n1", Key: "k", IP: "ip"}, t0)
	// A copy from our previous incarnation: answered with a tombstone.
	f := tb.apply(ent("a", 50, 7, "old", "x"), t0, true)
	if len(f.broadcast) != 1 || !f.broadcast[0].Deleted || f.broadcast[0].Generation != 100 || f.broadcast[0].Key != "old" {
		t.Fatalf("old incarnation's copy answered with %+v, want a tombstone of generation 100", f.broadcast)
	}
	// An older copy of a current entry: answered with the current one.
	f = tb.apply(ent("a", 100, 0, "k", "older"), t0, true)
	if len(f.broadcast) != 1 || f.broadcast[0].IP != "ip" {
		t.Fatalf("older copy answered with %+v, want our entry", f.broadcast)
	}
	// A forged newer copy: our entry is re-stamped above it.
	f = tb.apply(ent("a", 100, 40, "k", "forged"), t0, true)
	if len(f.broadcast) != 1 || f.broadcast[0].IP != "ip" || f.broadcast[0].Version <= 40 {
		t.Fatalf("forged copy answered with %+v, want our entry above version 40", f.broadcast)
	}
	if got := liveIPs(tb)["a/k"]; got != "ip" {
		t.Fatalf("a/k = %q after a forged copy, want ip", got)
	}
	// A copy from a higher generation than ours (clock went back): we move
	// above it and re-stamp everything.
	f = tb.apply(ent("a", 500, 1, "k", "future"), t0, true)
	if tb.gen != 501 {
		t.Fatalf("generation = %d, want 501", tb.gen)
	}
	for _, e := range f.broadcast {
		if e.Generation != 501 {
			t.Fatalf("re-stamped %+v, want generation 501", e)
		}
	}
}

func TestTableDeadAndDropped(t *testing.T) {
	tb := newTable("a", 100)
	tb.apply(ent("b", 5, 1, "k", "ip"), t0, true)
	// memberlist: dead. Entries gone, copies ignored until alive again.
	if f := tb.nodeLeft("b", t0); len(f.changed) != 1 || len(liveIPs(tb)) != 0 {
		t.Fatalf("after nodeLeft: %v", liveIPs(tb))
	}
	tb.apply(ent("b", 5, 1, "k", "ip"), t0, true)
	tb.apply(ent("b", 6, 1, "k", "ip"), t0, true)
	if len(liveIPs(tb)) != 0 {
		t.Fatalf("dead node's copies accepted: %v", liveIPs(tb))
	}
	if !tb.nodeAlive("b", t0) {
		t.Fatal("nodeAlive after dead = false, want true (pull its state)")
	}
	tb.apply(ent("b", 5, 1, "k", "ip"), t0, true)
	if len(liveIPs(tb)) != 1 {
		t.Fatalf("entries of a node alive again refused: %v", liveIPs(tb))
	}

	// DropNode: entries of the known generation ignored; a newer one accepted.
	tb.dropNode("b", t0)
	tb.apply(ent("b", 5, 2, "k2", "ip"), t0, true)
	if len(liveIPs(tb)) != 0 {
		t.Fatalf("dropped node's entries: %v", liveIPs(tb))
	}
	tb.apply(ent("b", 7, 1, "k3", "new"), t0, true)
	if got := liveIPs(tb); len(got) != 1 || got["b/k3"] != "new" {
		t.Fatalf("after a newer generation of a dropped node: %v, want b/k3", got)
	}
	// DropNode of an unknown node blocks every generation until restored.
	tb.dropNode("c", t0)
	if tb.owners["c"].droppedGen != math.MaxUint64 {
		t.Fatalf("droppedGen of unknown node = %d", tb.owners["c"].droppedGen)
	}
	tb.apply(ent("c", 9, 1, "k", "x"), t0, true)
	if _, ok := liveIPs(tb)["c/k"]; ok {
		t.Fatal("unknown dropped node's entry accepted")
	}
	// memberlist seeing it dead, then alive again, does not lift the
	// managers' word: after a partition its tasks may have been replaced.
	tb.nodeLeft("c", t0)
	tb.nodeAlive("c", t0)
	tb.apply(ent("c", 9, 1, "k", "x"), t0, true)
	if _, ok := liveIPs(tb)["c/k"]; ok {
		t.Fatal("a dropped node's entry accepted once memberlist saw it alive again")
	}
	tb.restoreNode("c", t0)
	tb.apply(ent("c", 9, 1, "k", "x"), t0, true)
	if _, ok := liveIPs(tb)["c/k"]; !ok {
		t.Fatal("restored node's entry refused")
	}
	// DropNode and nodeLeft of ourselves do nothing.
	tb.publish(Entry{Network: "n1", Key: "mine"}, t0)
	tb.dropNode("a", t0)
	tb.nodeLeft("a", t0)
	if _, ok := liveIPs(tb)["a/mine"]; !ok {
		t.Fatal("own entry dropped")
	}
}

func TestTableReap(t *testing.T) {
	tb := newTable("a", 100)
	tb.publish(Entry{Network: "n1", Key: "k"}, t0)
	tb.withdraw("n1", "k", t0)
	tb.apply(ent("b", 5, 1, "k", "ip"), t0, true)
	ts := ent("b", 5, 2, "k", "")
	ts.Deleted = true
	tb.apply(ts, t0.Add(time.Minute), true)
	tb.reap(t0.Add(5*time.Minute), 5*time.Minute, time.Hour)
	if n := len(tb.all()); n != 1 {
		t.Fatalf("after reaping our tombstone: %d entries, want b's tombstone only", n)
	}
	tb.reap(t0.Add(6*time.Minute), 5*time.Minute, time.Hour)
	if n := len(tb.all()); n != 0 {
		t.Fatalf("after reaping: %d entries, want 0", n)
	}
	tb.reap(t0.Add(12*time.Minute), 5*time.Minute, time.Hour)
	if len(tb.owners) != 0 {
		t.Fatalf("owner records left: %v", tb.owners)
	}
}

func TestStateEncodingBounded(t *testing.T) {
	tb := newTable("a", 100)
	for i := range 100 {
		tb.apply(ent("b", 5, uint64(i+1), "k"+string(rune('A'+i%26))+string(rune('a'+i/26)), "10.0.0.1"), t0, false)
	}
	b, left := encodeState(tb.all(), 2000)
	if left == 0 || len(b) > 2000 {
		t.Fatalf("state %d bytes, %d left out; want <= 2000 bytes and some left out", len(b), left)
	}
	got, err := decodeState(b)
	if err != nil || len(got) != 100-left {
		t.Fatalf("decoded %d entries (err %v), want %d", len(got), err, 100-left)
	}
}

func TestTableIdempotentWrites(t *testing.T) {
	tb := newTable("a", 100)
	if f := tb.publish(Entry{Network: "n1", Key: "k", IP: "1"}, t0); len(f.broadcast) != 1 {
		t.Fatal("first publish not broadcast")
	}
	if f := tb.publish(Entry{Network: "n1", Key: "k", IP: "1"}, t0); len(f.broadcast) != 0 || len(f.changed) != 0 {
		t.Fatal("identical republish broadcast again")
	}
	if f := tb.publish(Entry{Network: "n1", Key: "k", IP: "2"}, t0); len(f.broadcast) != 1 || f.broadcast[0].Version != 2 {
		t.Fatalf("changed publish: %+v", f.broadcast)
	}
	if f := tb.withdraw("n1", "k", t0); len(f.broadcast) != 1 {
		t.Fatal("withdraw not broadcast")
	}
	if f := tb.withdraw("n1", "k", t0); len(f.broadcast) != 0 {
		t.Fatal("second withdraw broadcast again")
	}
	if f := tb.publish(Entry{Network: "n1", Key: "k", IP: "2"}, t0); len(f.broadcast) != 1 || len(tb.live("n1")) != 1 {
		t.Fatal("publish after withdraw did not revive the entry")
	}
}
