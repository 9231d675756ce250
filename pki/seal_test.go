package pki

import (
	"bytes"
	"crypto/rand"
	"testing"
)

func TestSealRoundTripAndTamper(t *testing.T) {
	key := make([]byte, SealKeySize)
	_, _ = rand.Read(key)
	data := []byte("hunter2")
	sealed, err := Seal(key, data)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, data) {
		t.Fatal("sealed data contains the plaintext")
	}
	got, err := Unseal(key, sealed)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("round trip: %q %v", got, err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := Unseal(key, sealed); err == nil {
		t.Fatal("tampered data unsealed")
	}
	if _, err := Seal(key[:16], data); err == nil {
		t.Fatal("short key accepted")
	}
}
