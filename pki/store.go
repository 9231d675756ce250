package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/shoal-project/shoal/errdefs"
)

// File names inside a Store's directory (<data-dir>/certificates).
const (
	KeyFile    = "node.key"    // node private key, PKCS #8 PEM, 0600
	CertFile   = "node.crt"    // node certificate, PEM, 0644
	RootCAFile = "root-ca.crt" // cluster root CA certificate, PEM, 0644

	// newSuffix marks the staged copies Save writes before renaming them
	// into place; see Store.
	newSuffix = ".new"
)

// NodeState is a node's security state on disk.
type NodeState struct {
	KeyPEM    []byte
	CertPEM   []byte
	RootCAPEM []byte
}

// LoadedState is a NodeState that Load checked: the key matches the
// certificate, which the root CA signed and which carries a shoal identity.
// The certificate may have expired: compare Cert.NotAfter with the clock.
type LoadedState struct {
	NodeState
	Cert     *x509.Certificate
	RootCA   *RootCA // verify-only
	Identity Identity
}

// Store keeps a node's security state in one directory:
//
//	<dir>/root-ca.crt  root CA certificate
//	<dir>/node.key     node private key (0600), encrypted when a key is given
//	<dir>/node.crt     node certificate
//	<dir>/node-keys.*  the node's data key and its local KEK (see Keyring)
//
// Each file is replaced atomically (temporary file, fsync, rename, fsync of
// the directory). The key and the certificate must change together, so Save
// first stages both as node.key.new and node.crt.new (fsynced), then renames
// the key, then the certificate. A crash between the two renames leaves a
// key that matches node.crt.new, and Load finishes the rename; leftover
// staged files of a crash before the renames are removed. A Store is safe for
// concurrent use within one process; one process owns a data directory.
//
// With a key (NewEncryptedStore), node.key is kept encrypted with it (a
// "SHOAL ENCRYPTED PRIVATE KEY" PEM block, AES-256-GCM); Load decrypts it,
// and re-encrypts in place a plaintext node.key left by an older release.
type Store struct {
	dir string
	key []byte // encrypts node.key; nil: plaintext
	mu  sync.Mutex
}

// NewStore returns the Store of dir. Nothing is touched on disk until Save.
func NewStore(dir string) *Store { return &Store{dir: dir} }

// NewEncryptedStore returns the Store of dir that keeps node.key encrypted
// with key (32 bytes: a Keyring's TLSKeyKey).
func NewEncryptedStore(dir string, key []byte) *Store { return &Store{dir: dir, key: key} }

// Dir returns the Store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(name string) string { return filepath.Join(s.dir, name) }

// Save writes st, creating the directory (0700) if needed.
func (s *Store) Save(st NodeState) error {
	if len(st.KeyPEM) == 0 || len(st.CertPEM) == 0 || len(st.RootCAPEM) == 0 {
		return errdefs.InvalidArgument("node security state to save is incomplete")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("create certificate directory: %w", err)
	}
	if err := writeFileAtomic(s.dir, RootCAFile, st.RootCAPEM, 0o644); err != nil {
		return err
	}
	keyFile := st.KeyPEM
	if s.key != nil {
		var err error
		if keyFile, err = encryptKeyPEM(s.key, st.KeyPEM); err != nil {
			return err
		}
	}
	if err := writeFileSynced(s.path(KeyFile+newSuffix), keyFile, 0o600); err != nil {
		return err
	}
	if err := writeFileSynced(s.path(CertFile+newSuffix), st.CertPEM, 0o644); err != nil {
		return err
	}
	if err := os.Rename(s.path(KeyFile+newSuffix), s.path(KeyFile)); err != nil {
		return fmt.Errorf("install %s: %w", s.path(KeyFile), err)
	}
	if err := os.Rename(s.path(CertFile+newSuffix), s.path(CertFile)); err != nil {
		return fmt.Errorf("install %s: %w", s.path(CertFile), err)
	}
	return syncDir(s.dir)
}

// Exists reports whether the directory holds any node security file, that
// is, whether this node was part of a swarm.
func (s *Store) Exists() (bool, error) {
	for _, name := range []string{RootCAFile, KeyFile, CertFile} {
		_, err := os.Stat(s.path(name))
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("%s: %w", s.path(name), err)
		}
	}
	return false, nil
}

// Remove deletes the node's security files (swarm leave).
func (s *Store) Remove() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := os.Stat(s.dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	for _, name := range []string{CertFile, CertFile + newSuffix, KeyFile, KeyFile + newSuffix, RootCAFile, RootCAFile + newSuffix,
		KeysFile, KeysFile + newSuffix, LocalKEKFile, LocalKEKFile + newSuffix} {
		if err := os.Remove(s.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", s.path(name), err)
		}
	}
	return syncDir(s.dir)
}

// Load reads and checks the state. When no file exists it returns a
// NotFound error (not in a swarm). A missing, unreadable or damaged file is
// a FailedPrecondition error that names the file and how to recover.
func (s *Store) Load() (*LoadedState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok, err := s.Exists(); err != nil {
		return nil, err
	} else if !ok {
		return nil, errdefs.NotFound("no node certificates in %s: this node is not part of a swarm", s.dir)
	}
	if err := s.recoverStaged(); err != nil {
		return nil, err
	}
	var st NodeState
	var err error
	if st.RootCAPEM, err = s.read(RootCAFile); err != nil {
		return nil, err
	}
	if st.KeyPEM, err = s.read(KeyFile); err != nil {
		return nil, err
	}
	plaintextKey := !isEncryptedKeyPEM(st.KeyPEM)
	if !plaintextKey {
		if st.KeyPEM, err = decryptKeyPEM(s.key, st.KeyPEM); err != nil {
			return nil, s.damaged(KeyFile, err)
		}
	}
	if st.CertPEM, err = s.read(CertFile); err != nil {
		return nil, err
	}
	ca, err := ParseRootCA(st.RootCAPEM, nil, nil)
	if err != nil {
		return nil, s.damaged(RootCAFile, err)
	}
	key, err := ParsePrivateKeyPEM(st.KeyPEM)
	if err != nil {
		return nil, s.damaged(KeyFile, err)
	}
	cert, err := ParseCertificatePEM(st.CertPEM)
	if err != nil {
		return nil, s.damaged(CertFile, err)
	}
	if !samePublicKey(cert.PublicKey, key.Public()) {
		return nil, s.damaged(CertFile, fmt.Errorf("it does not match the private key in %s", s.path(KeyFile)))
	}
	if err := cert.CheckSignatureFrom(ca.Certificate()); err != nil {
		return nil, s.damaged(CertFile, fmt.Errorf("it was not signed by the root CA in %s: %v", s.path(RootCAFile), err))
	}
	id, err := IdentityFromCert(cert)
	if err != nil {
		return nil, s.damaged(CertFile, err)
	}
	if plaintextKey && s.key != nil {
		// Written by a release without encryption at rest: encrypt it now.
		enc, err := encryptKeyPEM(s.key, st.KeyPEM)
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(s.dir, KeyFile, enc, 0o600); err != nil {
			return nil, err
		}
	}
	return &LoadedState{NodeState: st, Cert: cert, RootCA: ca, Identity: id}, nil
}

// Identity reads the node's identity from its certificate alone (the key
// may be locked away), without checking or repairing anything.
func (s *Store) Identity() (Identity, error) {
	b, err := os.ReadFile(s.path(CertFile))
	if err != nil {
		return Identity{}, s.damaged(CertFile, err)
	}
	cert, err := ParseCertificatePEM(b)
	if err != nil {
		return Identity{}, s.damaged(CertFile, err)
	}
	return IdentityFromCert(cert)
}

// recoverStaged finishes or discards an interrupted Save (see Store).
func (s *Store) recoverStaged() error {
	stagedCert, err := os.ReadFile(s.path(CertFile + newSuffix))
	if errors.Is(err, fs.ErrNotExist) {
		return s.discardStaged()
	}
	if err != nil {
		return s.damaged(CertFile+newSuffix, err)
	}
	keyPEM, kerr := os.ReadFile(s.path(KeyFile))
	certPEM, cerr := os.ReadFile(s.path(CertFile))
	if kerr == nil && isEncryptedKeyPEM(keyPEM) {
		if keyPEM, kerr = decryptKeyPEM(s.key, keyPEM); kerr != nil {
			return s.damaged(KeyFile, kerr)
		}
	}
	if kerr == nil && (cerr != nil || !keyMatchesCert(keyPEM, certPEM)) && keyMatchesCert(keyPEM, stagedCert) {
		// Crash between the two renames: the key is new, finish the job.
		if err := os.Rename(s.path(CertFile+newSuffix), s.path(CertFile)); err != nil {
			return fmt.Errorf("finish interrupted save of %s: %w", s.path(CertFile), err)
		}
		return syncDir(s.dir)
	}
	return s.discardStaged()
}

func (s *Store) discardStaged() error {
	for _, name := range []string{KeyFile + newSuffix, CertFile + newSuffix, RootCAFile + newSuffix} {
		if err := os.Remove(s.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove staged %s: %w", s.path(name), err)
		}
	}
	return nil
}

func keyMatchesCert(keyPEM, certPEM []byte) bool {
	key, err := ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return false
	}
	cert, err := ParseCertificatePEM(certPEM)
	return err == nil && samePublicKey(cert.PublicKey, key.Public())
}

func (s *Store) read(name string) ([]byte, error) {
	b, err := os.ReadFile(s.path(name))
	if err != nil {
		return nil, s.damaged(name, err)
	}
	return b, nil
}

// damaged is the error for a missing or bad file, naming it and the way out.
func (s *Store) damaged(name string, cause error) error {
	return errdefs.FailedPrecondition("node security file %s is missing or damaged: %v. "+
		"This node cannot rejoin its swarm with it; to recover, remove %s (or run \"shoal swarm leave --force\") "+
		"and join the swarm again with a join token", s.path(name), cause, s.dir)
}

// writeFileAtomic replaces dir/name with data: temporary file, fsync,
// rename, fsync of dir.
func writeFileAtomic(dir, name string, data []byte, perm os.FileMode) error {
	tmp := filepath.Join(dir, name+newSuffix)
	if err := writeFileSynced(tmp, data, perm); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("install %s: %w", filepath.Join(dir, name), err)
	}
	return syncDir(dir)
}

// writeFileSynced writes data to path with perm (the mode is set even when
// the file existed) and fsyncs it.
func writeFileSynced(path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write %s: %w", path, cerr)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
