package raftstore

// BatchBytes is the encoded size control loops aim a transaction at: large
// enough that a burst of thousands of changes costs tens of raft entries,
// not thousands, and well under MaxTransactionBytes.
const BatchBytes = MaxTransactionBytes / 2

// maxBatchItems bounds a batch of tiny items, so that one transaction (and
// the watch events it makes) stays small enough for consumers.
const maxBatchItems = 2000

// Batches cuts items into consecutive batches whose summed size (as given
// by size, e.g. proto.Size of the object written) stays within BatchBytes,
// and that hold at most 2,000 items each. An item larger than BatchBytes
// gets a batch of its own.
func Batches[T any](items []T, size func(T) int) [][]T {
	var out [][]T
	start, sum := 0, 0
	for i, it := range items {
		n := size(it)
		if i > start && (sum+n > BatchBytes || i-start >= maxBatchItems) {
			out = append(out, items[start:i])
			start, sum = i, 0
		}
		sum += n
	}
	if start < len(items) {
		out = append(out, items[start:])
	}
	return out
}
