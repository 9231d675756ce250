// Package pki holds shoal's security primitives: the cluster root CA, node
// certificates, join tokens, the node's certificate files, TLS configs and
// per-RPC role authorization. It imports only the standard library's crypto,
// gRPC (for the interceptors and TLS peer information), clockwork, and
// shoal's proto and errdefs.
//
// # Certificates
//
// The root CA (NewRootCA) is an ECDSA P-256 key with a self-signed
// certificate, CN "shoal-root-ca", valid 20 years. RootCA.Sign issues node
// certificates from a CSR of which only the public key is used (after its
// signature is checked); everything else comes from the caller, who takes it
// from the join token and the stored node object:
//
//	Subject  CN = node ID, OU = "manager" | "worker", O = cluster ID
//	DNS SAN  node ID, "shoal-manager" | "shoal-worker"
//	EKU      client auth + server auth
//	validity now-1h .. now+expiry (default 90 days, at least 1 hour)
//
// The OU is the lower-case role name (OUManager, OUWorker). The DNS SANs let
// a TLS client demand a specific node (ServerName = node ID) or any node of a
// role (ServerName = ManagerServerName). Nodes renew at RenewalTime: a
// random 50–80 % of the lifetime.
//
// # Join tokens
//
//	SHTKN-1-<ca-digest: 50 base36 chars of SHA-256(root CA DER)>-<secret: 25 base36 chars of 128 random bits>
//
// The joiner downloads the root CA over BootstrapClientConfig, checks it with
// CheckRootCAForToken before sending the secret, and pins it from then on
// (ClientConfig). The CA server maps a presented token to a role with
// RoleForToken, which compares in constant time.
//
// # Authorization
//
// Every gRPC method of a manager is either in the Authorizer's policy (the
// roles allowed to call it) or in its short list of methods open to callers
// without a certificate (the CA bootstrap calls); anything else is refused.
// Callers with a certificate of another cluster or of a removed node are
// refused. ServerConfig verifies client certificates when given, so the
// Authorizer sees only verified identities.
//
// # TLS sessions
//
// ClientConfig resumes TLS 1.3 sessions kept by the node's KeyPair (per
// certificate: a Swap starts empty); ServerConfig seals tickets with a
// TicketKeys, keyed by a manager from the cluster's root CA key, so that
// every manager opens every manager's tickets and a reconnect after a
// failover costs no certificate signature or verification. A ticket that
// does not open means a full handshake.
//
// Admit lets a server refuse a connection as soon as its ClientHello is
// read, before any key exchange or signature (a manager refuses new
// connections while overloaded); PeerClientConfig marks a manager's
// connections to other managers with the PeerProto ALPN name, a hint (not
// a credential) that spares them the refusal; a joining node's
// connections, made before it has a certificate, offer JoinProto.
//
// # On disk
//
// Store keeps <data-dir>/certificates/{root-ca.crt,node.key,node.crt},
// replacing files atomically; a damaged file is reported by name with the
// way to recover. node.key is encrypted with a subkey of the node's data
// key (NewEncryptedStore).
//
// # Keyring and unlock keys
//
// Keyring keeps the node's data key (DEK) in certificates/node-keys.json,
// sealed by a key-encrypting key: the node-local node-keys.kek, or the
// swarm's unlock key (autolock), in which case the node is Locked until
// Unlock. DataKeys derives the subkeys for the raft log, node.key and the
// task database. Re-wrapping is crash-safe (see Keyring). Unlock keys are
// 32 random bytes shown as SHKEY-1-<43 base64 characters>
// (FormatUnlockKey, ParseUnlockKey); UnlockKeyFingerprint names one without
// revealing it.
//
// # Concurrency
//
// RootCA, Authorizer and JoinToken are immutable and safe for concurrent
// use. TicketKeys, Keyring and KeyPair are safe for concurrent use: Swap replaces the certificate
// atomically while handshakes read it. Store serializes its own calls; one
// process owns a data directory. The TLS configs returned by ServerConfig,
// ClientConfig and BootstrapClientConfig must not be modified once in use
// (clone them first), as with any tls.Config. All functions without a
// receiver are safe for concurrent use.
//
// # Time
//
// Nothing here calls time.Now in logic under test: RootCA takes a
// clockwork.Clock (nil is the real clock) and RenewalTime / RenewalDelay take
// times and a random source. The TLS handshakes themselves check validity
// against the real clock, as crypto/tls does.
package pki
