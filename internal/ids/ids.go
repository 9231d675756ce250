// Package ids makes object identifiers: 25 lowercase base-36 characters
// from 128 random bits, the shape Docker swarm users know (node, service,
// task and cluster IDs). They are valid node IDs for certificates (pki) and
// valid containerd IDs. Safe for concurrent use.
package ids

import (
	"crypto/rand"
	"math/big"
	"strings"
)

// Len is the length of every ID.
const Len = 25

// New returns a fresh random ID.
func New() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	s := new(big.Int).SetBytes(b[:]).Text(36)
	if len(s) < Len {
		s = strings.Repeat("0", Len-len(s)) + s
	}
	return s
}
