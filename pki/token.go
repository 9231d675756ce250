package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"math/big"
	"strings"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// Join token layout: SHTKN-1-<digest>-<secret>.
const (
	TokenPrefix  = "SHTKN"
	TokenVersion = "1"
	digestLen    = 50 // base36 characters of a SHA-256
	secretLen    = 25 // base36 characters of a 128-bit secret
	secretBytes  = 16
)

// JoinToken is a parsed join token. Digest is the root CA digest the joiner
// pins (see CADigest); Secret is what the CA checks and what decides the
// role. String() returns the full token, secret included: never log it.
type JoinToken struct {
	Digest string
	Secret string
}

// String returns the token in its SHTKN-1-<digest>-<secret> form.
func (t JoinToken) String() string {
	return TokenPrefix + "-" + TokenVersion + "-" + t.Digest + "-" + t.Secret
}

// GenerateJoinToken returns a new token for the root CA of the given digest
// with a fresh 128-bit secret from crypto/rand.
func GenerateJoinToken(caDigest string) (string, error) {
	if err := checkBase36(caDigest, digestLen, 256, "CA digest"); err != nil {
		return "", err
	}
	var b [secretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", errdefs.Internal("generate join token secret: %v", err)
	}
	return JoinToken{Digest: caDigest, Secret: encodeBase36(b[:], secretLen)}.String(), nil
}

// ParseJoinToken parses and checks a join token: the SHTKN-1 prefix, a
// 50-character digest and a 25-character secret, both only [0-9a-z] and
// round-tripping through base36 within 256 and 128 bits. Errors say what is
// wrong and never repeat the token or its secret.
func ParseJoinToken(s string) (JoinToken, error) {
	if len(s) > 200 {
		return JoinToken{}, errdefs.InvalidArgument("invalid join token: %d characters is far too long", len(s))
	}
	parts := strings.Split(s, "-")
	if len(parts) != 4 {
		return JoinToken{}, errdefs.InvalidArgument("invalid join token: want 4 parts separated by '-' (%s-%s-<ca-digest>-<secret>), got %d", TokenPrefix, TokenVersion, len(parts))
	}
	if parts[0] != TokenPrefix {
		return JoinToken{}, errdefs.InvalidArgument("invalid join token: it must start with %q", TokenPrefix+"-")
	}
	if parts[1] != TokenVersion {
		return JoinToken{}, errdefs.InvalidArgument("invalid join token: unsupported version (want %q)", TokenVersion)
	}
	if err := checkBase36(parts[2], digestLen, 256, "CA digest"); err != nil {
		return JoinToken{}, errdefs.InvalidArgument("invalid join token: %v", err)
	}
	if err := checkBase36(parts[3], secretLen, 128, "secret"); err != nil {
		return JoinToken{}, errdefs.InvalidArgument("invalid join token: %v", err)
	}
	return JoinToken{Digest: parts[2], Secret: parts[3]}, nil
}

// TokensEqual compares a presented token with a stored one in constant time
// (in their contents; both are hashed first, so not even their lengths
// leak). An empty stored token matches nothing.
func TokensEqual(presented, stored string) bool {
	if stored == "" {
		return false
	}
	a := sha256.Sum256([]byte(presented))
	b := sha256.Sum256([]byte(stored))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// RoleForToken returns the role a presented token grants among the cluster's
// stored tokens, comparing against both in constant time. A malformed token
// is InvalidArgument; a well-formed one that matches neither is
// PermissionDenied (rotated, or of another swarm).
func RoleForToken(presented string, stored *api.JoinTokens) (api.NodeRole, error) {
	tok, err := ParseJoinToken(presented)
	if err != nil {
		return 0, err
	}
	if stored == nil {
		return 0, errdefs.FailedPrecondition("the swarm has no join tokens")
	}
	s := tok.String()
	isWorker := TokensEqual(s, stored.GetWorker())
	isManager := TokensEqual(s, stored.GetManager())
	switch {
	case isManager:
		return api.NodeRole_MANAGER, nil
	case isWorker:
		return api.NodeRole_WORKER, nil
	}
	if current, err := ParseJoinToken(stored.GetWorker()); err == nil && current.Digest != tok.Digest {
		return 0, errdefs.PermissionDenied("the join token is for another swarm or an older root CA (CA digest mismatch)")
	}
	return 0, errdefs.PermissionDenied("the join token is not valid: it may have been rotated; get the current one with \"shoal swarm join-token\"")
}

// CheckRootCAForToken is the joiner's CA pinning step: it checks a root CA
// certificate downloaded over an unverified connection against the digest of
// the join token, and must pass BEFORE the secret is sent anywhere. On
// success it returns the verify-only RootCA to pin in later connections.
func CheckRootCAForToken(caCertPEM []byte, tok JoinToken) (*RootCA, error) {
	cert, err := ParseCertificatePEM(caCertPEM)
	if err != nil {
		return nil, errdefs.PermissionDenied("the root CA certificate sent by the manager cannot be read: %v; refusing to send the secret", err)
	}
	if got := CADigest(cert.Raw); subtle.ConstantTimeCompare([]byte(got), []byte(tok.Digest)) != 1 {
		return nil, errdefs.PermissionDenied("the root CA certificate does not match the join token's CA digest: the manager's CA has digest %s, the token expects %s; refusing to send the secret (wrong token for this manager, or someone is in the middle)", got, tok.Digest)
	}
	ca, err := ParseRootCA(caCertPEM, nil, nil)
	if err != nil {
		return nil, errdefs.PermissionDenied("the root CA certificate matches the token but is unusable: %v; refusing to send the secret", err)
	}
	return ca, nil
}

// encodeBase36 writes b as a big-endian number in lowercase base36,
// zero-padded on the left to width.
func encodeBase36(b []byte, width int) string {
	s := new(big.Int).SetBytes(b).Text(36)
	if len(s) < width {
		s = strings.Repeat("0", width-len(s)) + s
	}
	return s
}

// checkBase36 checks that s has exactly width characters of [0-9a-z] and
// encodes a number of at most bits bits, so that it round-trips exactly.
func checkBase36(s string, width, bits int, what string) error {
	if len(s) != width {
		return errdefs.InvalidArgument("the %s must have %d characters, it has %d", what, width, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return errdefs.InvalidArgument("the %s may only contain [0-9a-z]; character %d is not", what, i+1)
		}
	}
	n, ok := new(big.Int).SetString(s, 36)
	if !ok || n.BitLen() > bits {
		return errdefs.InvalidArgument("the %s is not a %d-bit base36 value", what, bits)
	}
	if encodeBase36(n.Bytes(), width) != s {
		return errdefs.InvalidArgument("the %s does not round-trip through base36", what)
	}
	return nil
}
