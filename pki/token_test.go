package pki

import (
	"regexp"
	"strings"
	"testing"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

var tokenRE = regexp.MustCompile(`^SHTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$`)

func TestJoinTokenRoundTrip(t *testing.T) {
	ca := newTestCA(t, clockwork.NewFakeClockAt(epoch))
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		s, err := GenerateJoinToken(ca.Digest())
		if err != nil {
			t.Fatal(err)
		}
		if !tokenRE.MatchString(s) {
			t.Fatalf("token %q does not have the SHTKN-1-<50>-<25> form", s)
		}
		if seen[s] {
			t.Fatal("two generated tokens are equal")
		}
		seen[s] = true
		tok, err := ParseJoinToken(s)
		if err != nil {
			t.Fatalf("ParseJoinToken(generated): %v", err)
		}
		if tok.Digest != ca.Digest() || tok.String() != s {
			t.Fatalf("round trip: got %+v", tok)
		}
	}
	if _, err := GenerateJoinToken("short"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("GenerateJoinToken(bad digest): err = %v", err)
	}
}

func TestEncodeBase36Padding(t *testing.T) {
	if got := encodeBase36([]byte{0}, 25); got != strings.Repeat("0", 25) {
		t.Errorf("zero = %q", got)
	}
	if got := encodeBase36([]byte{35}, 3); got != "00z" {
		t.Errorf("35 = %q", got)
	}
	max := make([]byte, 32)
	for i := range max {
		max[i] = 0xff
	}
	if got := encodeBase36(max, digestLen); len(got) != digestLen {
		t.Errorf("2^256-1 has %d base36 digits, want %d", len(got), digestLen)
	}
	if got := encodeBase36(max[:16], secretLen); len(got) != secretLen {
		t.Errorf("2^128-1 has %d base36 digits, want %d", len(got), secretLen)
	}
}

func TestParseJoinTokenRefusesMalformed(t *testing.T) {
	d := strings.Repeat("1", 50)
	s := strings.Repeat("2", 25)
	good := "SHTKN-1-" + d + "-" + s
	if _, err := ParseJoinToken(good); err != nil {
		t.Fatalf("good token refused: %v", err)
	}
	bad := map[string]string{
		"empty":                 "",
		"docker prefix":         "SWMTKN-1-" + d + "-" + s,
		"lower-case prefix":     "shtkn-1-" + d + "-" + s,
		"version 2":             "SHTKN-2-" + d + "-" + s,
		"no secret":             "SHTKN-1-" + d,
		"extra part":            good + "-x",
		"empty secret":          "SHTKN-1-" + d + "-",
		"digest 49":             "SHTKN-1-" + d[:49] + "-" + s,
		"digest 51":             "SHTKN-1-" + d + "1-" + s,
		"secret 24":             "SHTKN-1-" + d + "-" + s[:24],
		"secret 26":             "SHTKN-1-" + d + "-" + s + "2",
		"upper-case digest":     "SHTKN-1-" + strings.Repeat("A", 50) + "-" + s,
		"upper-case secret":     "SHTKN-1-" + d + "-" + strings.Repeat("B", 25),
		"sign in secret":        "SHTKN-1-" + d + "-+" + s[1:],
		"underscore in digest":  "SHTKN-1-" + "_" + d[1:] + "-" + s,
		"space":                 " " + good,
		"trailing newline":      good + "\n",
		"non-ASCII":             "SHTKN-1-" + d[:48] + "é" + "-" + s,
		"secret over 128 bits":  "SHTKN-1-" + d + "-" + strings.Repeat("z", 25),
		"digest over 256 bits":  "SHTKN-1-" + strings.Repeat("z", 50) + "-" + s,
		"very long":             good + strings.Repeat("0", 1000),
		"separator doubled":     "SHTKN--1-" + d + "-" + s,
		"token of a joined key": "SHKEY-1-" + d + "-" + s,
	}
	for name, tok := range bad {
		_, err := ParseJoinToken(tok)
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: err = %v, want InvalidArgument", name, err)
			continue
		}
		if strings.Contains(err.Error(), s[:20]) {
			t.Errorf("%s: error %q repeats the secret", name, err)
		}
	}
}

func TestTokensEqual(t *testing.T) {
	ca := newTestCA(t, clockwork.NewFakeClockAt(epoch))
	a, _ := GenerateJoinToken(ca.Digest())
	b, _ := GenerateJoinToken(ca.Digest())
	if !TokensEqual(a, a) || !TokensEqual(a, strings.Clone(a)) {
		t.Error("equal tokens compare unequal")
	}
	if TokensEqual(a, b) || TokensEqual(a[:len(a)-1], a) || TokensEqual(a+"0", a) {
		t.Error("different tokens compare equal")
	}
	if TokensEqual("", "") || TokensEqual(a, "") {
		t.Error("empty stored token matches")
	}
	// Same digest, one secret character off.
	repl := "0"
	if a[len(a)-1] == '0' {
		repl = "1"
	}
	if TokensEqual(a[:len(a)-1]+repl, a) {
		t.Error("secret differing in one character compares equal")
	}
}

func TestRoleForToken(t *testing.T) {
	ca := newTestCA(t, clockwork.NewFakeClockAt(epoch))
	w, _ := GenerateJoinToken(ca.Digest())
	m, _ := GenerateJoinToken(ca.Digest())
	stored := &api.JoinTokens{Worker: w, Manager: m}
	if r, err := RoleForToken(w, stored); err != nil || r != api.NodeRole_WORKER {
		t.Errorf("worker token: %v, %v", r, err)
	}
	if r, err := RoleForToken(m, stored); err != nil || r != api.NodeRole_MANAGER {
		t.Errorf("manager token: %v, %v", r, err)
	}
	// Rotation: the old worker token is refused at once.
	rotated, _ := GenerateJoinToken(ca.Digest())
	if _, err := RoleForToken(w, &api.JoinTokens{Worker: rotated, Manager: m}); !errdefs.IsPermissionDenied(err) {
		t.Errorf("old token after rotation: err = %v, want PermissionDenied", err)
	}
	// Right secret shape, wrong digest.
	other := newTestCA(t, clockwork.NewFakeClockAt(epoch))
	tok, _ := ParseJoinToken(w)
	foreign := JoinToken{Digest: other.Digest(), Secret: tok.Secret}.String()
	if _, err := RoleForToken(foreign, stored); !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "digest") {
		t.Errorf("token of another CA: err = %v", err)
	}
	// Right digest, wrong secret.
	guess := JoinToken{Digest: ca.Digest(), Secret: strings.Repeat("0", 25)}.String()
	if _, err := RoleForToken(guess, stored); !errdefs.IsPermissionDenied(err) {
		t.Errorf("wrong secret: err = %v", err)
	}
	if _, err := RoleForToken("SHTKN-1-x-y", stored); !errdefs.IsInvalidArgument(err) {
		t.Errorf("malformed: err = %v", err)
	}
	if _, err := RoleForToken(w, nil); err == nil {
		t.Error("no stored tokens: accepted")
	}
}

func TestCheckRootCAForToken(t *testing.T) {
	ca := newTestCA(t, clockwork.NewFakeClockAt(epoch))
	s, _ := GenerateJoinToken(ca.Digest())
	tok, _ := ParseJoinToken(s)
	pinned, err := CheckRootCAForToken(ca.CertPEM(), tok)
	if err != nil {
		t.Fatalf("matching CA refused: %v", err)
	}
	if pinned.CanSign() || pinned.Digest() != ca.Digest() {
		t.Fatal("pinned CA is not the verify-only copy of the root")
	}

	impostor := newTestCA(t, clockwork.NewFakeClockAt(epoch))
	_, err = CheckRootCAForToken(impostor.CertPEM(), tok)
	if !errdefs.IsPermissionDenied(err) {
		t.Fatalf("impostor CA: err = %v, want PermissionDenied", err)
	}
	for _, want := range []string{
		"the root CA certificate does not match the join token's CA digest",
		"refusing to send the secret",
		impostor.Digest(),
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), tok.Secret) {
		t.Errorf("error %q repeats the secret", err)
	}
	if _, err := CheckRootCAForToken([]byte("not pem"), tok); !errdefs.IsPermissionDenied(err) ||
		!strings.Contains(err.Error(), "refusing to send the secret") {
		t.Errorf("garbage CA: err = %v", err)
	}
	// A node certificate whose digest an attacker put in a token is still
	// not a root.
	n := issue(t, ca, "n1", api.NodeRole_WORKER, testCluster, 0)
	if _, err := CheckRootCAForToken(n.certPEM, JoinToken{Digest: CADigest(n.cert.Raw), Secret: tok.Secret}); err == nil {
		t.Error("node certificate accepted as root CA")
	}
}
