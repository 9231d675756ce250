package pki

import (
	"crypto/x509"
	"math/rand/v2"
	"time"
)

// Renewal happens between lifetime/2 (50 %) and lifetime - lifetime/5 (80 %).
const (
	renewMinDivisor           = 2
	renewMaxComplementDivisor = 5
)

// RenewalTime returns when to renew cert: NotBefore plus a random 50–80 % of
// its lifetime (NotAfter - NotBefore). The randomness spreads the renewals of
// nodes that joined together. r is the random source (a seeded one in
// tests); nil uses the package's global source.
func RenewalTime(cert *x509.Certificate, r *rand.Rand) time.Time {
	f := rand.Float64
	if r != nil {
		f = r.Float64
	}
	lifetime := cert.NotAfter.Sub(cert.NotBefore)
	if lifetime <= 0 {
		return cert.NotBefore
	}
	// Integer bounds, so the result is within the window to the nanosecond
	// whatever the float rounding.
	lo := lifetime / renewMinDivisor
	hi := lifetime - lifetime/renewMaxComplementDivisor
	span := hi - lo
	off := time.Duration(f() * float64(span))
	off = max(0, min(off, span))
	return cert.NotBefore.Add(lo + off)
}

// RenewalDelay returns how long to wait from now before renewing cert, per
// RenewalTime; zero when that time has passed (renew at once).
func RenewalDelay(cert *x509.Certificate, now time.Time, r *rand.Rand) time.Duration {
	if d := RenewalTime(cert, r).Sub(now); d > 0 {
		return d
	}
	return 0
}
