package batch

import "testing"

func TestCut(t *testing.T) {
	sizes := []int{10, 10, 10, 100, 10, 500, 10}
	id := func(n int) int { return n }
	got := Cut(sizes, id, 3, 200)
	want := [][]int{{10, 10, 10}, {100, 10}, {500}, {10}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("batch %d: got %v, want %v", i, got[i], want[i])
		}
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("batch %d: got %v, want %v", i, got[i], want[i])
			}
		}
	}
	if got := Cut([]int{}, id, 3, 200); len(got) != 0 {
		t.Errorf("empty input: %v", got)
	}
}
