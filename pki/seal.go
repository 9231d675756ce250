package pki

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"

	"github.com/shoal-project/shoal/errdefs"
)

// SealKeySize is the size of keys Seal takes (AES-256).
const SealKeySize = 32

// Seal encrypts data with key (AES-256-GCM, a random nonce prepended).
// Managers use it for secret data in the store, so plaintext never reaches
// the raft log.
func Seal(key, data []byte) ([]byte, error) { return sealAD(key, data, nil) }

// sealAD is Seal with associated data: what the ciphertext is bound to.
func sealAD(key, data, ad []byte) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return gcm.Seal(nonce, nonce, data, ad), nil
}

// Unseal decrypts what Seal produced, failing if it was altered.
func Unseal(key, sealed []byte) ([]byte, error) { return unsealAD(key, sealed, nil) }

func unsealAD(key, sealed, ad []byte) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < gcm.NonceSize() {
		return nil, errdefs.Internal("sealed data too short")
	}
	out, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], ad)
	if err != nil {
		return nil, errdefs.Internal("unseal: %v", err)
	}
	return out, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != SealKeySize {
		return nil, errdefs.Internal("sealing key has %d bytes, want %d", len(key), SealKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, errdefs.Internal("sealing key: %v", err)
	}
	return cipher.NewGCM(block)
}
