package formatter

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// JoinLabels prints labels as k=v,k2=v2, sorted: the LABELS column.
func JoinLabels(labels map[string]string) string {
	parts := make([]string, 0, len(labels))
	for k, v := range labels {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// PrintLabels writes the "<title>:" block of an inspect --pretty, one
// " - k=v" (or " - k" for an empty value) line per label, sorted by key.
// Nothing is written when there are no labels.
func PrintLabels(w io.Writer, title string, labels map[string]string) {
	if len(labels) == 0 {
		return
	}
	fmt.Fprintln(w, title+":")
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v := labels[k]; v != "" {
			fmt.Fprintf(w, " - %s=%s\n", k, v)
		} else {
			fmt.Fprintf(w, " - %s\n", k)
		}
	}
}
