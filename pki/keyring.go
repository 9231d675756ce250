package pki

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/shoal-project/shoal/errdefs"
)

// Files of a node's keyring, in its certificate directory.
const (
	// KeysFile holds the node's data key (DEK), sealed by a key-encrypting
	// key (KEK): the node-local KEK, or the swarm's unlock key (autolock).
	KeysFile = "node-keys.json"
	// LocalKEKFile is the node-local KEK. It exists only while the DEK is
	// wrapped by it (autolock off, or a worker).
	LocalKEKFile = "node-keys.kek"
)

// How the DEK is wrapped (keysFile.KEK).
const (
	wrapLocal  = "local"
	wrapUnlock = "unlock-key"
)

const keysFileVersion = 1

// ErrInvalidUnlockKey is an unlock key that does not open this node's
// keyring. Nothing changes on the node.
var ErrInvalidUnlockKey = errdefs.New(errdefs.ErrInvalidArgument, "swarm could not be unlocked: invalid key provided")

// keysFile is KeysFile's content. Salt makes each wrap use its own
// wrapping key; Sealed is keysPayload sealed with AES-256-GCM.
type keysFile struct {
	Version int    `json:"version"`
	KEK     string `json:"kek"`
	// Fingerprint of the unlock key (wrapUnlock only).
	Fingerprint string `json:"kek_fingerprint,omitempty"`
	Salt        []byte `json:"salt"`
	Sealed      []byte `json:"sealed"`
}

type keysPayload struct {
	DEK []byte `json:"dek"`
}

// DataKeys is a node's unwrapped data key. Each use gets its own subkey
// (HKDF-SHA256), so one ciphertext can never be replayed as another's.
type DataKeys struct{ dek []byte }

// RaftKey encrypts the raft log file (raftstore).
func (k DataKeys) RaftKey() []byte { return k.derive("raft.db") }

// TLSKeyKey encrypts the node's TLS private key (Store).
func (k DataKeys) TLSKeyKey() []byte { return k.derive("node.key") }

// TaskDBKey encrypts the agent's task database.
func (k DataKeys) TaskDBKey() []byte { return k.derive("tasks.db") }

func (k DataKeys) derive(purpose string) []byte {
	out, err := hkdf.Key(sha256.New, k.dek, nil, "shoal data key v1 "+purpose, SealKeySize)
	if err != nil {
		panic(err) // only for lengths HKDF cannot produce
	}
	return out
}

// Keyring is a node's data key on disk (KeysFile, LocalKEKFile) and, once
// opened or unlocked, in memory.
//
// Crash safety: each file is replaced atomically (write, fsync, rename,
// fsync of the directory). Wrapping with the unlock key replaces KeysFile
// first and removes LocalKEKFile after; wrapping with the local KEK writes
// LocalKEKFile first and KeysFile after. At every moment KeysFile names a
// KEK that exists (on disk, or the unlock key the cluster holds), so a
// crash never leaves a node unable to decrypt. A stale LocalKEKFile next to
// an unlock-key wrap is removed at open.
//
// A Keyring is safe for concurrent use.
type Keyring struct {
	dir string

	mu   sync.Mutex
	file *keysFile // nil: no keyring on disk
	dek  []byte    // nil while locked
}

// OpenKeyring reads the keyring in dir. With the local KEK it is unlocked
// at once; with an unlock key it stays Locked until Unlock. When there is no
// keyring (a node from before encryption at rest), Exists is false.
func OpenKeyring(dir string) (*Keyring, error) {
	k := &Keyring{dir: dir}
	b, err := os.ReadFile(k.path(KeysFile))
	if errors.Is(err, fs.ErrNotExist) {
		if key, err := os.ReadFile(k.path(KeyFile)); err == nil && isEncryptedKeyPEM(key) {
			return nil, k.damaged(KeysFile, errors.New("it is missing, but node.key is encrypted with the key it held"))
		}
		return k, nil
	}
	if err != nil {
		return nil, k.damaged(KeysFile, err)
	}
	var f keysFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, k.damaged(KeysFile, err)
	}
	if f.Version != keysFileVersion {
		return nil, k.damaged(KeysFile, fmt.Errorf("version %d; this shoald reads version %d", f.Version, keysFileVersion))
	}
	k.file = &f
	switch f.KEK {
	case wrapLocal:
		kek, err := os.ReadFile(k.path(LocalKEKFile))
		if err != nil {
			return nil, k.damaged(LocalKEKFile, err)
		}
		dek, err := unwrap(&f, kek)
		if err != nil {
			return nil, k.damaged(KeysFile, fmt.Errorf("it does not open with %s: %v", k.path(LocalKEKFile), err))
		}
		k.dek = dek
	case wrapUnlock:
		// A crash after the rewrap, before the local KEK was removed.
		if err := removeIfExists(k.path(LocalKEKFile)); err != nil {
			return nil, err
		}
	default:
		return nil, k.damaged(KeysFile, fmt.Errorf("unknown key-encrypting key %q", f.KEK))
	}
	return k, nil
}

// CreateKeyring makes a new keyring in dir (created 0700 if needed): a new
// random DEK wrapped by a new node-local KEK, replacing any keyring there.
// The node's TLS key must be saved after it, encrypted with its TLSKeyKey.
func CreateKeyring(dir string) (*Keyring, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create certificate directory: %w", err)
	}
	dek := make([]byte, SealKeySize)
	if _, err := rand.Read(dek); err != nil {
		return nil, errdefs.Internal("generate data key: %v", err)
	}
	k := &Keyring{dir: dir, dek: dek}
	if err := k.wrapLocal(); err != nil {
		return nil, err
	}
	return k, nil
}

// Exists reports whether a keyring was found on disk.
func (k *Keyring) Exists() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.file != nil
}

// Locked reports whether the DEK is wrapped by an unlock key not given yet.
func (k *Keyring) Locked() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.file != nil && k.dek == nil
}

// Unlock opens a keyring wrapped by an unlock key. A wrong key is
// ErrInvalidUnlockKey and changes nothing.
func (k *Keyring) Unlock(unlockKey []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.file == nil {
		return errdefs.FailedPrecondition("this node has no keyring to unlock")
	}
	if k.dek != nil {
		return errdefs.FailedPrecondition("swarm is not locked")
	}
	if len(unlockKey) != UnlockKeySize {
		return ErrInvalidUnlockKey
	}
	dek, err := unwrap(k.file, unlockKey)
	if err != nil {
		return ErrInvalidUnlockKey
	}
	k.dek = dek
	return nil
}

// Lock forgets the DEK again when an unlock key wraps it (a start after
// Unlock failed: the node stays locked, as it was).
func (k *Keyring) Lock() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.file != nil && k.file.KEK == wrapUnlock {
		k.dek = nil
	}
}

// Keys returns the data keys; ok is false while locked or without keyring.
func (k *Keyring) Keys() (keys DataKeys, ok bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.dek == nil {
		return DataKeys{}, false
	}
	return DataKeys{dek: k.dek}, true
}

// WrappedWith returns the fingerprint of the unlock key the DEK is wrapped
// with on disk ("" when the node-local KEK wraps it): the key this node
// needs after a restart.
func (k *Keyring) WrappedWith() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.file == nil || k.file.KEK != wrapUnlock {
		return ""
	}
	return k.file.Fingerprint
}

// Wrap re-wraps the DEK with unlockKey, or with a node-local KEK when
// unlockKey is empty. It does nothing when the DEK is already wrapped so.
// The keyring must be unlocked.
func (k *Keyring) Wrap(unlockKey []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.dek == nil {
		return errdefs.FailedPrecondition("the keyring is locked")
	}
	if len(unlockKey) == 0 {
		if k.file != nil && k.file.KEK == wrapLocal {
			return nil
		}
		return k.wrapLocal()
	}
	if len(unlockKey) != UnlockKeySize {
		return errdefs.InvalidArgument("unlock key has %d bytes, want %d", len(unlockKey), UnlockKeySize)
	}
	fp := UnlockKeyFingerprint(unlockKey)
	if k.file != nil && k.file.KEK == wrapUnlock && k.file.Fingerprint == fp {
		return nil
	}
	f, err := wrap(k.dek, unlockKey, wrapUnlock, fp)
	if err != nil {
		return err
	}
	if err := k.writeKeysFile(f); err != nil {
		return err
	}
	if err := removeIfExists(k.path(LocalKEKFile)); err != nil {
		return err
	}
	return syncDir(k.dir)
}

// wrapLocal wraps the DEK with the node-local KEK, making one if there is
// none. k.mu is held (or k is not shared yet).
func (k *Keyring) wrapLocal() error {
	kek, err := os.ReadFile(k.path(LocalKEKFile))
	if err != nil || len(kek) != SealKeySize {
		kek = make([]byte, SealKeySize)
		if _, err := rand.Read(kek); err != nil {
			return errdefs.Internal("generate node key: %v", err)
		}
		if err := writeFileAtomic(k.dir, LocalKEKFile, kek, 0o600); err != nil {
			return err
		}
	}
	f, err := wrap(k.dek, kek, wrapLocal, "")
	if err != nil {
		return err
	}
	return k.writeKeysFile(f)
}

func (k *Keyring) writeKeysFile(f *keysFile) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(k.dir, KeysFile, b, 0o600); err != nil {
		return err
	}
	k.file = f
	return nil
}

func (k *Keyring) path(name string) string { return filepath.Join(k.dir, name) }

func (k *Keyring) damaged(name string, cause error) error {
	return errdefs.FailedPrecondition("node key file %s is missing or damaged: %v. "+
		"This node cannot read its own state without it; to recover, restore %s from a backup, or remove this node "+
		"(on a healthy manager: `shoal node rm --force <id>`), run \"shoal swarm leave --force\" here and join again",
		k.path(name), cause, k.dir)
}

// wrap seals dek under a key derived from kek and a fresh salt; the kind
// and fingerprint are bound as associated data.
func wrap(dek, kek []byte, kind, fingerprint string) (*keysFile, error) {
	f := &keysFile{Version: keysFileVersion, KEK: kind, Fingerprint: fingerprint, Salt: make([]byte, 32)}
	if _, err := rand.Read(f.Salt); err != nil {
		return nil, errdefs.Internal("generate salt: %v", err)
	}
	payload, err := json.Marshal(keysPayload{DEK: dek})
	if err != nil {
		return nil, err
	}
	wk, err := hkdf.Key(sha256.New, kek, f.Salt, "shoal node keys wrap v1", SealKeySize)
	if err != nil {
		return nil, err
	}
	if f.Sealed, err = sealAD(wk, payload, f.associatedData()); err != nil {
		return nil, err
	}
	return f, nil
}

func unwrap(f *keysFile, kek []byte) ([]byte, error) {
	wk, err := hkdf.Key(sha256.New, kek, f.Salt, "shoal node keys wrap v1", SealKeySize)
	if err != nil {
		return nil, err
	}
	b, err := unsealAD(wk, f.Sealed, f.associatedData())
	if err != nil {
		return nil, err
	}
	var p keysPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	if len(p.DEK) != SealKeySize {
		return nil, fmt.Errorf("data key has %d bytes", len(p.DEK))
	}
	return p.DEK, nil
}

func (f *keysFile) associatedData() []byte {
	return []byte(fmt.Sprintf("shoal node keys v%d|%s|%s", f.Version, f.KEK, f.Fingerprint))
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// encryptedKeyPEMType is the PEM block of a node key sealed with the
// keyring's TLSKeyKey (AES-256-GCM over the PKCS #8 PEM).
const encryptedKeyPEMType = "SHOAL ENCRYPTED PRIVATE KEY"

var keyPEMAD = []byte("shoal node.key v1")

func encryptKeyPEM(key, keyPEM []byte) ([]byte, error) {
	sealed, err := sealAD(key, keyPEM, keyPEMAD)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: encryptedKeyPEMType, Headers: map[string]string{"Cipher": "AES-256-GCM"}, Bytes: sealed}), nil
}

func isEncryptedKeyPEM(b []byte) bool {
	return bytes.Contains(b, []byte("-----BEGIN "+encryptedKeyPEMType+"-----"))
}

func decryptKeyPEM(key, b []byte) ([]byte, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != encryptedKeyPEMType {
		return nil, errors.New("not an encrypted node key")
	}
	if key == nil {
		return nil, errors.New("it is encrypted and no data key was given to read it")
	}
	out, err := unsealAD(key, block.Bytes, keyPEMAD)
	if err != nil {
		return nil, fmt.Errorf("it does not decrypt with this node's data key (%s)", KeysFile)
	}
	return out, nil
}
