package pki

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"sync/atomic"
)

// TicketKeys seals the TLS session tickets a manager's server hands out,
// so that an agent reconnecting after a manager failure resumes its
// session (TLS 1.3 PSK with a fresh ECDHE: no certificate signature or
// chain verification on either side) on any manager, not only the one
// that issued the ticket, and on a restarted one.
//
// The key comes from a secret every manager of the cluster holds
// (SetSecret: the manager gives it the root CA key, kept in the raft
// store): whoever holds that secret can sign node certificates already, so
// a ticket key derived from it gives no one anything new. Until a secret
// is set (a manager that has not read its store yet), and for tickets it
// cannot open, the server seals with a key of this process, random at
// NewTicketKeys, and does a full handshake for tickets it cannot open:
// resumption is an optimization, never a condition.
//
// crypto/tls still checks every resumed session as it checks a new one:
// the client's certificate unexpired and chained to the server's current
// ClientCAs, the ticket at most 7 days old. The Authorizer then sees the
// session's certificate as on any connection.
//
// A TicketKeys is safe for concurrent use.
type TicketKeys struct {
	shared atomic.Pointer[ticketKey]
	local  *ticketKey
}

// ticketKey is one sealing key and its ID, carried in the clear at the
// start of each ticket so that a manager tells its keys apart.
type ticketKey struct {
	id   [ticketKeyIDLen]byte
	aead cipher.AEAD
}

const (
	ticketVersion  = 1
	ticketKeyIDLen = 8
	// ticketInfo names the key's purpose in its derivation.
	ticketInfo = "shoal tls session ticket key v1"
)

// NewTicketKeys returns keys that seal with a random key of this process
// until SetSecret gives it the cluster's.
func NewTicketKeys() *TicketKeys {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		panic(fmt.Sprintf("pki: no randomness for a ticket key: %v", err)) // crypto/rand never fails on Linux
	}
	k, err := newTicketKey(secret)
	if err != nil {
		panic(fmt.Sprintf("pki: ticket key: %v", err))
	}
	return &TicketKeys{local: k}
}

// SetSecret derives the shared key from secret (the cluster's root CA key,
// PEM); it does nothing when the secret is the one already set. An empty
// secret drops the shared key. Tickets sealed with a previous shared key
// are no longer opened (their holders do a full handshake).
func (t *TicketKeys) SetSecret(secret []byte) error {
	if len(secret) == 0 {
		t.shared.Store(nil)
		return nil
	}
	k, err := newTicketKey(secret)
	if err != nil {
		return err
	}
	if cur := t.shared.Load(); cur != nil && cur.id == k.id {
		return nil
	}
	t.shared.Store(k)
	return nil
}

// Shared reports whether a shared key is set.
func (t *TicketKeys) Shared() bool { return t.shared.Load() != nil }

// newTicketKey derives an AES-256-GCM key and its ID from secret with
// HKDF-SHA256.
func newTicketKey(secret []byte) (*ticketKey, error) {
	raw, err := hkdf.Key(sha256.New, secret, nil, ticketInfo, 32+ticketKeyIDLen)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(raw[:32])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	k := &ticketKey{aead: aead}
	copy(k.id[:], raw[32:])
	return k, nil
}

// wrap seals a session state into a ticket:
//
//	version (1) | key ID (8) | nonce (12) | AES-GCM(state), the header as additional data
func (t *TicketKeys) wrap(_ tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
	k := t.shared.Load()
	if k == nil {
		k = t.local
	}
	state, err := ss.Bytes()
	if err != nil {
		return nil, err
	}
	nonceLen := k.aead.NonceSize()
	hdrLen := 1 + ticketKeyIDLen + nonceLen
	out := make([]byte, hdrLen, hdrLen+len(state)+k.aead.Overhead())
	out[0] = ticketVersion
	copy(out[1:], k.id[:])
	if _, err := rand.Read(out[1+ticketKeyIDLen : hdrLen]); err != nil {
		return nil, err
	}
	return k.aead.Seal(out, out[1+ticketKeyIDLen:hdrLen], state, out[:hdrLen]), nil
}

// unwrap opens a ticket sealed by wrap with the shared or the local key.
// A ticket it cannot open (another cluster's, an older key's, damaged)
// gives nil and no error: the handshake goes on in full.
func (t *TicketKeys) unwrap(ticket []byte, _ tls.ConnectionState) (*tls.SessionState, error) {
	if len(ticket) < 1+ticketKeyIDLen || ticket[0] != ticketVersion {
		return nil, nil
	}
	id := ticket[1 : 1+ticketKeyIDLen]
	var k *ticketKey
	if s := t.shared.Load(); s != nil && bytes.Equal(s.id[:], id) {
		k = s
	} else if bytes.Equal(t.local.id[:], id) {
		k = t.local
	} else {
		return nil, nil
	}
	hdrLen := 1 + ticketKeyIDLen + k.aead.NonceSize()
	if len(ticket) < hdrLen+k.aead.Overhead() {
		return nil, nil
	}
	state, err := k.aead.Open(nil, ticket[1+ticketKeyIDLen:hdrLen], ticket[hdrLen:], ticket[:hdrLen])
	if err != nil {
		return nil, nil
	}
	ss, err := tls.ParseSessionState(state)
	if err != nil {
		return nil, nil
	}
	return ss, nil
}
