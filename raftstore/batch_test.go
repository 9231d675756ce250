package raftstore

import "testing"

func TestBatchesStayWithinBytesAndItems(t *testing.T) {
	sizes := []int{BatchBytes / 2, BatchBytes / 2, 1, BatchBytes * 2, 10}
	got := Batches(sizes, func(n int) int { return n })
	want := [][]int{{BatchBytes / 2, BatchBytes / 2}, {1}, {BatchBytes * 2}, {10}}
	if len(got) != len(want) {
		t.Fatalf("got %d batches, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if len(got[i]) != len(want[i]) || got[i][0] != want[i][0] {
			t.Fatalf("batch %d: %v, want %v", i, got[i], want[i])
		}
	}
	small := make([]int, 5000)
	got = Batches(small, func(int) int { return 1 })
	if len(got) != 3 || len(got[0]) != maxBatchItems || len(got[2]) != 1000 {
		t.Fatalf("5000 tiny items: %d batches", len(got))
	}
	if Batches([]int(nil), func(int) int { return 1 }) != nil {
		t.Fatal("no items must give no batch")
	}
}
