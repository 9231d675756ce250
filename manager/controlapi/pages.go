package controlapi

import (
	"sort"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

// Lists are answered in pages so that no answer exceeds the message cap,
// however many objects match. Each list is sorted by a unique key; a page
// token is the key of the last object of the previous page, and a page
// holds the objects after it, up to pageBytes encoded (at least one object,
// which the limits keep well under the cap). Every page is read from a
// fresh snapshot: an object created or removed while a client pages is
// seen once or not at all, never twice.

// pageBudget is the bytes of objects one page may hold.
func (s *Server) pageBudget() int {
	if s.pageBytes > 0 {
		return s.pageBytes
	}
	return api.MaxListPageBytes
}

// page returns the items (sorted by key, keys unique) that follow token,
// up to budget bytes as size counts them, and the token of the next page
// ("" when this page ends the list).
func page[T any](items []T, key func(T) string, size func(T) int, token string, budget int) ([]T, string) {
	start := 0
	if token != "" {
		start = sort.Search(len(items), func(i int) bool { return key(items[i]) > token })
	}
	used := 0
	end := start
	for ; end < len(items); end++ {
		n := size(items[end])
		if end > start && used+n > budget {
			break
		}
		used += n
	}
	if end == len(items) {
		return items[start:end], ""
	}
	return items[start:end], key(items[end-1])
}

// pageMatching is page over the items that match, testing only as many
// items as the page needs (and one more match, to know whether the list
// goes on).
func pageMatching[T any](items []T, key func(T) string, match func(T) bool, size func(T) int, token string, budget int) ([]T, string) {
	i := 0
	if token != "" {
		i = sort.Search(len(items), func(i int) bool { return key(items[i]) > token })
	}
	var out []T
	used := 0
	for ; i < len(items); i++ {
		if !match(items[i]) {
			continue
		}
		n := size(items[i])
		if len(out) > 0 && used+n > budget {
			return out, key(out[len(out)-1])
		}
		used += n
		out = append(out, items[i])
	}
	return out, ""
}

// entrySize is the bytes a message takes as an element of a repeated field.
func entrySize(m proto.Message) int {
	n := proto.Size(m)
	return protowire.SizeTag(1) + protowire.SizeBytes(n)
}
