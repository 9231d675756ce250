package testutil

import (
	"strings"
	"sync"
)

// LogBuffer is a log sink (an io.Writer for slog handlers) that tests read
// while the code under test still writes to it. Safe for concurrent use.
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Count counts the occurrences of s in what was written so far.
func (l *LogBuffer) Count(s string) int {
	return strings.Count(l.String(), s)
}
