package orchestrator

import "strconv"

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func atoi(s string) uint64 {
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}
