// Package batch cuts a list of store writes into transactions bounded both
// by count and by encoded bytes, so that no transaction exceeds the raft
// entry cap whatever the size of the objects (a task carries a copy of its
// service's task spec, up to 256 KiB). It holds no state. InFlight keeps
// several such transactions in flight for a control loop while the loop's
// own state stays on its goroutine.
package batch

// PerItem is the bytes a transaction adds around each object it writes (the
// action, its kind and version, the object's wrapper).
const PerItem = 32

// Cut returns consecutive batches of items: each holds at most maxCount
// items and at most maxBytes by size (plus PerItem per item), and at least
// one item, so an item larger than maxBytes travels alone.
func Cut[T any](items []T, size func(T) int, maxCount, maxBytes int) [][]T {
	var out [][]T
	start, used := 0, 0
	for i, it := range items {
		n := size(it) + PerItem
		if i > start && (i-start >= maxCount || used+n > maxBytes) {
			out = append(out, items[start:i])
			start, used = i, 0
		}
		used += n
	}
	if start < len(items) {
		out = append(out, items[start:])
	}
	return out
}
