package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"

	"github.com/shoal-project/shoal/errdefs"
)

// UnlockKeyPrefix starts every unlock key (Docker's is "SWMKEY-1-").
const UnlockKeyPrefix = "SHKEY-1-"

// UnlockKeySize is the size of an unlock key's random value.
const UnlockKeySize = 32

// ErrInvalidUnlockKeyString is a string that is not an unlock key at all.
var ErrInvalidUnlockKeyString = errdefs.New(errdefs.ErrInvalidArgument,
	"invalid key string: an unlock key looks like "+UnlockKeyPrefix+"<43 characters>, as `shoal swarm unlock-key` prints it on an unlocked manager")

// GenerateUnlockKey returns a new random unlock key (the raw value kept in
// the Cluster object).
func GenerateUnlockKey() ([]byte, error) {
	k := make([]byte, UnlockKeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, errdefs.Internal("generate unlock key: %v", err)
	}
	return k, nil
}

// FormatUnlockKey renders a raw unlock key as users see it:
// SHKEY-1-<base64 of the 32 bytes, no padding>.
func FormatUnlockKey(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	return UnlockKeyPrefix + base64.RawStdEncoding.EncodeToString(raw)
}

// ParseUnlockKey reads a key printed by FormatUnlockKey (surrounding space
// ignored). Anything else is ErrInvalidUnlockKeyString.
func ParseUnlockKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, UnlockKeyPrefix) {
		return nil, ErrInvalidUnlockKeyString
	}
	raw, err := base64.RawStdEncoding.DecodeString(s[len(UnlockKeyPrefix):])
	if err != nil || len(raw) != UnlockKeySize {
		return nil, ErrInvalidUnlockKeyString
	}
	return raw, nil
}

// UnlockKeyFingerprint is a short public name of an unlock key (16 hex
// digits of a domain-separated SHA-256), so that which key a manager needs
// can be shown without showing the key.
func UnlockKeyFingerprint(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	h := sha256.New()
	h.Write([]byte("shoal unlock key fingerprint v1\x00"))
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil)[:8])
}
