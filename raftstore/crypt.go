package raftstore

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/chacha20poly1305"
)

// Encryption at rest of the raft log file.
//
// With a key (OpenEncryptedDiskStorage), every record's value is
// XChaCha20-Poly1305 ciphertext: a random 24-byte nonce (random nonces are
// safe for any number of records with this cipher), then the sealed data,
// with the record's bucket and key as associated data (a record moved to
// another key does not decrypt). The CRC-32C in front covers the stored
// bytes, so damage is told apart from a wrong key. meta/cipher names the
// cipher (in clear) and meta/key-check is a known value sealed with the key.

// cipherXChaCha is meta/cipher of an encrypted file.
const cipherXChaCha = "xchacha20-poly1305"

var (
	keyCipher   = []byte("cipher")
	keyKeyCheck = []byte("key-check")
	keyCheckVal = []byte("shoal raft.db key check v1")
)

// encryptingSuffix names the copy written while a plaintext file is
// encrypted; it replaces the file by rename, and a leftover is removed.
const encryptingSuffix = ".encrypting"

// recordCipher seals the records of the file; a nil *recordCipher stores
// them in clear (CRC only).
type recordCipher struct{ aead cipher.AEAD }

func newRecordCipher(key []byte) (*recordCipher, error) {
	if len(key) != chacha20poly1305.KeySize {
		return nil, fmt.Errorf("raft log key has %d bytes, want %d", len(key), chacha20poly1305.KeySize)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	return &recordCipher{aead: aead}, nil
}

// recordAD is the associated data of a record: bucket "/" key.
func recordAD(bucket, key []byte) []byte {
	ad := make([]byte, 0, len(bucket)+1+len(key))
	return append(append(append(ad, bucket...), '/'), key...)
}

// seal encodes a record's value: CRC-32C of the body, then the body (the
// data in clear, or nonce ++ ciphertext).
func (c *recordCipher) seal(bucket, key, b []byte) []byte {
	if c == nil {
		out := make([]byte, 4, 4+len(b))
		binary.BigEndian.PutUint32(out, crc32.Checksum(b, crcTable))
		return append(out, b...)
	}
	ns := c.aead.NonceSize()
	out := make([]byte, 4+ns, 4+ns+len(b)+c.aead.Overhead())
	if _, err := rand.Read(out[4:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // never, per crypto/rand's contract
	}
	out = c.aead.Seal(out, out[4:], b, recordAD(bucket, key))
	binary.BigEndian.PutUint32(out, crc32.Checksum(out[4:], crcTable))
	return out
}

// errUndecryptable is a record whose checksum holds but which the key does
// not open: forged, or sealed with another key.
var errUndecryptable = errors.New("checksum holds but the record fails authentication (altered, or sealed with another key)")

// unseal checks and decodes a record's value; the result is a copy.
func (c *recordCipher) unseal(bucket, key, v []byte) ([]byte, error) {
	if len(v) < 4 {
		return nil, errors.New("record shorter than its checksum")
	}
	body := v[4:]
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(v) {
		return nil, errors.New("checksum mismatch")
	}
	if c == nil {
		// bbolt's memory is only valid inside the transaction.
		return append([]byte(nil), body...), nil
	}
	ns := c.aead.NonceSize()
	if len(body) < ns+c.aead.Overhead() {
		return nil, errors.New("record shorter than its nonce and tag")
	}
	out, err := c.aead.Open(nil, body[:ns], body[ns:], recordAD(bucket, key))
	if err != nil {
		return nil, errUndecryptable
	}
	return out, nil
}

// isEmptyLog reports whether the file, and the log segments beside it at
// path, hold no raft state yet.
func isEmptyLog(tx *bolt.Tx, path string) bool {
	if seqs, err := listSegments(path); err != nil || len(seqs) > 0 {
		return false
	}
	meta := tx.Bucket(bucketMeta)
	if meta.Get(keyRaftID) != nil || meta.Get(keyHardState) != nil || meta.Get(keySnapMeta) != nil {
		return false
	}
	k, _ := tx.Bucket(bucketEntries).Cursor().First()
	return k == nil
}

// checkCipher compares the file's encryption with the key the storage was
// opened with, marking a new, empty file as encrypted. Called in the
// schema transaction.
func (s *DiskStorage) checkCipher(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	name := meta.Get(keyCipher)
	switch {
	case name == nil && s.rc == nil:
		return nil
	case name == nil:
		if !isEmptyLog(tx, s.path) {
			return errors.New("it holds records in clear but was opened for encryption")
		}
		if !tx.Writable() {
			return errCipherInit
		}
		if err := meta.Put(keyCipher, []byte(cipherXChaCha)); err != nil {
			return err
		}
		return meta.Put(keyKeyCheck, s.rc.seal(bucketMeta, keyKeyCheck, keyCheckVal))
	case s.rc == nil:
		return &openError{fmt.Errorf("the raft log file %s is encrypted and no key was given to open it", s.path)}
	case string(name) != cipherXChaCha:
		return fmt.Errorf("it is encrypted with %q, which this shoald does not know", name)
	}
	b, err := s.rc.unseal(bucketMeta, keyKeyCheck, meta.Get(keyKeyCheck))
	if errors.Is(err, errUndecryptable) || (err == nil && !bytes.Equal(b, keyCheckVal)) {
		return errors.New("it does not decrypt with this node's data key (was the node's key file replaced, or raft.db copied from another node?)")
	}
	if err != nil {
		return fmt.Errorf("key check record: %v", err)
	}
	return nil
}

// errCipherInit: checkCipher must run in a write transaction to mark a new
// log as encrypted.
var errCipherInit = errors.New("a new log must be marked encrypted")

// openError is an error of opening that is not damage to the file.
type openError struct{ err error }

func (e *openError) Error() string { return e.err.Error() }
func (e *openError) Unwrap() error { return e.err }

// encryptInPlace replaces a raft log file whose records are in clear with
// an encrypted copy: every record is checked and sealed into path +
// ".encrypting", which is fsynced and renamed over path (then the directory
// is fsynced). Until the rename the old file is untouched, so a crash
// leaves either the plaintext file or the encrypted one, both readable. A
// file that is already encrypted, or does not exist, is left alone.
func encryptInPlace(path string, rc *recordCipher) error {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) || (err == nil && st.Size() == 0) {
		return nil
	}
	if err != nil {
		return err
	}
	src, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return &DamagedError{Path: path, Detail: err.Error()}
	}
	defer src.Close()
	tmp := path + encryptingSuffix
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: 5 * time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	done := false
	defer func() {
		if !done {
			_ = dst.Close()
			_ = os.Remove(tmp)
		}
	}()
	plaintext := false
	err = src.View(func(stx *bolt.Tx) error {
		meta := stx.Bucket(bucketMeta)
		if meta == nil {
			return nil // no schema yet: nothing in it
		}
		if meta.Get(keyCipher) != nil {
			return nil
		}
		if v := meta.Get(keySchema); len(v) == 4 && binary.BigEndian.Uint32(v) > schemaVersion {
			return fmt.Errorf("file has schema version %d; this shoald understands up to %d (was it written by a newer release?)",
				binary.BigEndian.Uint32(v), schemaVersion)
		}
		v := meta.Get(keySchema)
		if seqs, err := listSegments(path); (err != nil || len(seqs) > 0) && (len(v) != 4 || binary.BigEndian.Uint32(v) >= 3) {
			// Only releases before schema 3 wrote logs in clear for shoald.
			// (Segments beside a schema 1 or 2 file are a crashed
			// migration's: the migration after the copy removes them.)
			return &openError{fmt.Errorf("the raft log %s holds log segments in clear: encrypting them is not supported; open it without a key", path)}
		}
		plaintext = true
		return dst.Update(func(dtx *bolt.Tx) error { return copyEncrypted(stx, dtx, rc) })
	})
	if err != nil {
		var oe *openError
		if _, ok := err.(*DamagedError); ok || errors.As(err, &oe) {
			return err
		}
		return &DamagedError{Path: path, Detail: err.Error()}
	}
	if !plaintext {
		return nil
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	done = true
	_ = src.Close()
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("install the encrypted %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// copyEncrypted copies every record of a plaintext file, checked, into an
// empty file, sealed with rc.
func copyEncrypted(stx, dtx *bolt.Tx, rc *recordCipher) error {
	for _, b := range [][]byte{bucketMeta, bucketEntries, bucketSnapshot} {
		if _, err := dtx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	dmeta := dtx.Bucket(bucketMeta)
	// The copy keeps the layout version of the source (its migrations run
	// at the open that follows); encryption needs at least version 2.
	schema := uint32(2)
	if v := stx.Bucket(bucketMeta).Get(keySchema); len(v) == 4 && binary.BigEndian.Uint32(v) > schema {
		schema = binary.BigEndian.Uint32(v)
	}
	if err := dmeta.Put(keySchema, binary.BigEndian.AppendUint32(nil, schema)); err != nil {
		return err
	}
	if err := dmeta.Put(keyCipher, []byte(cipherXChaCha)); err != nil {
		return err
	}
	if err := dmeta.Put(keyKeyCheck, rc.seal(bucketMeta, keyKeyCheck, keyCheckVal)); err != nil {
		return err
	}
	for _, k := range [][]byte{keyRaftID, keyHardState, keySnapMeta, keyCompacted} {
		v := stx.Bucket(bucketMeta).Get(k)
		if v == nil {
			continue
		}
		b, err := (*recordCipher)(nil).unseal(bucketMeta, k, v)
		if err != nil {
			return fmt.Errorf("meta record %s: %v", k, err)
		}
		if err := dmeta.Put(k, rc.seal(bucketMeta, k, b)); err != nil {
			return err
		}
	}
	for _, name := range [][]byte{bucketEntries, bucketSnapshot} {
		sb, db := stx.Bucket(name), dtx.Bucket(name)
		if sb == nil {
			continue
		}
		c := sb.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			b, err := (*recordCipher)(nil).unseal(name, k, v)
			if err != nil {
				return fmt.Errorf("%s record %x: %v", name, k, err)
			}
			if err := db.Put(append([]byte(nil), k...), rc.seal(name, k, b)); err != nil {
				return err
			}
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
