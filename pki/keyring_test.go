package pki

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

func TestUnlockKeyFormat(t *testing.T) {
	raw, err := GenerateUnlockKey()
	if err != nil {
		t.Fatal(err)
	}
	s := FormatUnlockKey(raw)
	if !strings.HasPrefix(s, "SHKEY-1-") || len(s) != len("SHKEY-1-")+43 {
		t.Fatalf("unlock key %q: want SHKEY-1- and 43 base64 characters", s)
	}
	back, err := ParseUnlockKey("  " + s + "\n")
	if err != nil || !bytes.Equal(back, raw) {
		t.Fatalf("parse %q: %v", s, err)
	}
	for _, bad := range []string{"", "SWMKEY-1-" + s[8:], "SHKEY-1-wrongwrongwrong", s + "AA", "SHKEY-1-" + strings.Repeat("!", 43)} {
		if _, err := ParseUnlockKey(bad); !errors.Is(err, ErrInvalidUnlockKeyString) || !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParseUnlockKey(%q) = %v, want the invalid key string error", bad, err)
		}
	}
	if f1, f2 := UnlockKeyFingerprint(raw), UnlockKeyFingerprint(append([]byte{1}, raw[1:]...)); len(f1) != 16 || f1 == f2 {
		t.Errorf("fingerprints %q %q: want 16 hex digits, different for different keys", f1, f2)
	}
}

// filesHold reports which files of dir contain b.
func filesHold(t *testing.T, dir string, b []byte) []string {
	t.Helper()
	var hits []string
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, b) {
			hits = append(hits, e.Name())
		}
	}
	return hits
}

func mustUnlockKey(t *testing.T) []byte {
	t.Helper()
	k, err := GenerateUnlockKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKeyringWrapping walks a keyring through what a manager lives: the
// local KEK, autolock on, a rotation, autolock off; after each step a
// fresh open (a restart) needs exactly the expected key, a wrong key changes
// nothing, and the data key stays the same.
func TestKeyringWrapping(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certificates")
	k, err := CreateKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys, ok := k.Keys()
	if !ok || k.Locked() || k.WrappedWith() != "" {
		t.Fatal("a new keyring is locked or wrapped by an unlock key")
	}
	dek := append([]byte(nil), keys.dek...)
	sameKeys := func(k *Keyring) {
		t.Helper()
		got, ok := k.Keys()
		if !ok || !bytes.Equal(got.dek, dek) || !bytes.Equal(got.RaftKey(), keys.RaftKey()) {
			t.Fatal("the data key changed")
		}
	}
	if hits := filesHold(t, dir, dek); len(hits) > 0 {
		t.Fatalf("the data key is in plain text in %v", hits)
	}

	// Restart with the local KEK: unlocked at once.
	k2, err := OpenKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k2.Locked() || !k2.Exists() {
		t.Fatal("a locally wrapped keyring opens locked")
	}
	sameKeys(k2)

	// Autolock on.
	k1 := mustUnlockKey(t)
	if err := k2.Wrap(k1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, LocalKEKFile)); !os.IsNotExist(err) {
		t.Fatalf("the local KEK is still on disk after wrapping with the unlock key (%v)", err)
	}
	if k2.WrappedWith() != UnlockKeyFingerprint(k1) {
		t.Fatalf("WrappedWith %q, want the fingerprint of the unlock key", k2.WrappedWith())
	}
	before, _ := os.ReadFile(filepath.Join(dir, KeysFile))
	k3, err := OpenKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !k3.Locked() {
		t.Fatal("a keyring wrapped by the unlock key opens unlocked")
	}
	if _, ok := k3.Keys(); ok {
		t.Fatal("a locked keyring gives its keys")
	}
	if err := k3.Unlock(mustUnlockKey(t)); !errors.Is(err, ErrInvalidUnlockKey) || !strings.Contains(err.Error(), "invalid key") {
		t.Fatalf("wrong key: %v, want ErrInvalidUnlockKey", err)
	}
	if err := k3.Unlock(k1[:5]); !errors.Is(err, ErrInvalidUnlockKey) {
		t.Fatalf("short key: %v, want ErrInvalidUnlockKey", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, KeysFile)); !bytes.Equal(before, after) || !k3.Locked() {
		t.Fatal("a wrong key changed the keyring")
	}
	if err := k3.Unlock(k1); err != nil {
		t.Fatal(err)
	}
	sameKeys(k3)

	// Rotation: the old key no longer opens it.
	k2nd := mustUnlockKey(t)
	if err := k3.Wrap(k2nd); err != nil {
		t.Fatal(err)
	}
	k4, err := OpenKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := k4.Unlock(k1); !errors.Is(err, ErrInvalidUnlockKey) {
		t.Fatalf("old key after rotation: %v, want ErrInvalidUnlockKey", err)
	}
	if err := k4.Unlock(k2nd); err != nil {
		t.Fatalf("new key after rotation: %v", err)
	}
	sameKeys(k4)
	if hits := filesHold(t, dir, dek); len(hits) > 0 {
		t.Fatalf("the data key is in plain text in %v", hits)
	}

	// Autolock off: unlocked at restart again.
	if err := k4.Wrap(nil); err != nil {
		t.Fatal(err)
	}
	k5, err := OpenKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k5.Locked() || k5.WrappedWith() != "" {
		t.Fatal("after autolock off the keyring still needs an unlock key")
	}
	sameKeys(k5)
}

// TestKeyringCrashLeftovers: what a crash in the middle of a rewrap can
// leave (staged .new files, a local KEK beside an unlock-key wrap) never
// stops a node from opening its keyring with the key it was wrapped with.
func TestKeyringCrashLeftovers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certificates")
	k, err := CreateKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := k.Keys()
	uk := mustUnlockKey(t)
	if err := k.Wrap(uk); err != nil {
		t.Fatal(err)
	}
	// Crash while turning autolock off: the new local KEK is written, the
	// keys file still says unlock key. Plus a half-written staged file.
	if err := os.WriteFile(filepath.Join(dir, LocalKEKFile), bytes.Repeat([]byte{7}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, KeysFile+".new"), []byte(`{"version":1,"ke`), 0o600); err != nil {
		t.Fatal(err)
	}
	k2, err := OpenKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !k2.Locked() {
		t.Fatal("the keyring is not locked")
	}
	if _, err := os.Stat(filepath.Join(dir, LocalKEKFile)); !os.IsNotExist(err) {
		t.Error("the stale local KEK was not removed at open")
	}
	if err := k2.Unlock(uk); err != nil {
		t.Fatal(err)
	}
	if got, _ := k2.Keys(); !bytes.Equal(got.dek, keys.dek) {
		t.Fatal("data key changed")
	}
	// Crash while turning autolock on (keys file staged, not renamed): the
	// local wrap still opens.
	k3, err := CreateKeyring(filepath.Join(t.TempDir(), "c2"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := wrap(bytes.Repeat([]byte{1}, 32), uk, wrapUnlock, UnlockKeyFingerprint(uk))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(k3.dir, KeysFile+".new"), []byte(f.Salt), 0o600); err != nil {
		t.Fatal(err)
	}
	if k4, err := OpenKeyring(k3.dir); err != nil || k4.Locked() {
		t.Fatalf("open after a crash before the rename: %v (locked %v)", err, k4 != nil && k4.Locked())
	}
}

func TestKeyringDamage(t *testing.T) {
	for name, hurt := range map[string]func(dir string) error{
		"keys file garbled": func(dir string) error {
			return os.WriteFile(filepath.Join(dir, KeysFile), []byte("{not json"), 0o600)
		},
		"sealed bytes flipped": func(dir string) error {
			p := filepath.Join(dir, KeysFile)
			b, _ := os.ReadFile(p)
			i := bytes.Index(b, []byte(`"sealed":"`)) + 12
			b[i] ^= 0x01
			return os.WriteFile(p, b, 0o600)
		},
		"local KEK missing": func(dir string) error { return os.Remove(filepath.Join(dir, LocalKEKFile)) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "certificates")
			if _, err := CreateKeyring(dir); err != nil {
				t.Fatal(err)
			}
			if err := hurt(dir); err != nil {
				t.Fatal(err)
			}
			_, err := OpenKeyring(dir)
			if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "to recover") {
				t.Fatalf("damaged keyring: %v; want an error naming the file and the recovery", err)
			}
		})
	}
}

// TestStoreEncryptedKey: with a key, node.key is never plaintext on disk;
// Load gives the plaintext key; a store without the key (or with another)
// refuses it naming the file; a plaintext node.key of an older release is
// encrypted at the first Load.
func TestStoreEncryptedKey(t *testing.T) {
	ca := newTestCA(t, clockwork.NewFakeClockAt(epoch))
	n := issue(t, ca, "n1", api.NodeRole_MANAGER, testCluster, 0)
	dir := filepath.Join(t.TempDir(), "certificates")
	kr, err := CreateKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := kr.Keys()
	s := NewEncryptedStore(dir, keys.TLSKeyKey())
	if err := s.Save(NodeState{KeyPEM: n.keyPEM, CertPEM: n.certPEM, RootCAPEM: ca.CertPEM()}); err != nil {
		t.Fatal(err)
	}
	der := pemBody(t, n.keyPEM)
	if hits := filesHold(t, dir, der); len(hits) > 0 || len(filesHold(t, dir, []byte("BEGIN PRIVATE KEY"))) > 0 {
		t.Fatalf("the private key is in plain text on disk: %v", hits)
	}
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(st.KeyPEM, n.keyPEM) {
		t.Fatal("loaded key differs")
	}
	if id, err := s.Identity(); err != nil || id.NodeID != "n1" {
		t.Fatalf("Identity: %v %v", id, err)
	}
	for what, other := range map[string]*Store{"no key": NewStore(dir), "another key": NewEncryptedStore(dir, bytes.Repeat([]byte{9}, 32))} {
		if _, err := other.Load(); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, KeyFile)) {
			t.Errorf("%s: Load = %v, want an error naming %s", what, err, KeyFile)
		}
	}

	// Migration from a plaintext node.key.
	old := filepath.Join(t.TempDir(), "certificates")
	if err := NewStore(old).Save(NodeState{KeyPEM: n.keyPEM, CertPEM: n.certPEM, RootCAPEM: ca.CertPEM()}); err != nil {
		t.Fatal(err)
	}
	kr2, err := OpenKeyring(old)
	if err != nil || kr2.Exists() {
		t.Fatalf("keyring of an old data dir: %v, exists %v", err, kr2 != nil && kr2.Exists())
	}
	if kr2, err = CreateKeyring(old); err != nil {
		t.Fatal(err)
	}
	keys2, _ := kr2.Keys()
	st, err = NewEncryptedStore(old, keys2.TLSKeyKey()).Load()
	if err != nil || !bytes.Equal(st.KeyPEM, n.keyPEM) {
		t.Fatalf("migrating load: %v", err)
	}
	if hits := filesHold(t, old, der); len(hits) > 0 {
		t.Fatalf("after migration the private key is still in plain text in %v", hits)
	}
	if _, err := NewEncryptedStore(old, keys2.TLSKeyKey()).Load(); err != nil {
		t.Fatalf("load after migration: %v", err)
	}
	// The keys file lost while node.key is encrypted: named, not recreated.
	if err := os.Remove(filepath.Join(old, KeysFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeyring(old); err == nil || !strings.Contains(err.Error(), KeysFile) {
		t.Fatalf("open without keys file beside an encrypted node.key: %v", err)
	}
}

func pemBody(t *testing.T, p []byte) []byte {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(string(p)), "\n")
	if len(lines) < 3 {
		t.Fatal("short PEM")
	}
	return []byte(lines[1]) // a line of the base64 body
}
