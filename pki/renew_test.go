package pki

import (
	"crypto/x509"
	"math/rand/v2"
	"testing"
	"time"
)

func TestRenewalTimeWithinWindow(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	lifetimes := []time.Duration{
		DefaultNodeCertExpiry + time.Hour, // as Sign makes them, backdated 1h
		MinNodeCertExpiry,
		time.Nanosecond,
		7,
		RootCAValidity,
		200 * 365 * 24 * time.Hour,
	}
	for _, lifetime := range lifetimes {
		cert := &x509.Certificate{NotBefore: epoch, NotAfter: epoch.Add(lifetime)}
		lo, hi := lifetime/2, lifetime-lifetime/5
		var minSeen, maxSeen time.Duration = hi, lo
		for i := 0; i < 2000; i++ {
			off := RenewalTime(cert, r).Sub(cert.NotBefore)
			if off < lo || off > hi {
				t.Fatalf("lifetime %v: renewal at %v, outside [%v, %v]", lifetime, off, lo, hi)
			}
			minSeen, maxSeen = min(minSeen, off), max(maxSeen, off)
		}
		// The draws spread over the window rather than sitting on one spot.
		if lifetime >= time.Hour && (minSeen > lo+(hi-lo)/10 || maxSeen < hi-(hi-lo)/10) {
			t.Errorf("lifetime %v: renewals only in [%v, %v] of [%v, %v]", lifetime, minSeen, maxSeen, lo, hi)
		}
	}
}

func TestRenewalTimeExtremes(t *testing.T) {
	cert := &x509.Certificate{NotBefore: epoch, NotAfter: epoch.Add(100 * time.Hour)}
	zero := rand.New(constSource(0))
	if got := RenewalTime(cert, zero); !got.Equal(epoch.Add(50 * time.Hour)) {
		t.Errorf("lowest draw: %v, want 50%%", got.Sub(epoch))
	}
	top := rand.New(constSource(^uint64(0)))
	if got := RenewalTime(cert, top).Sub(epoch); got > 80*time.Hour || got < 79*time.Hour {
		t.Errorf("highest draw: %v, want just under 80%%", got)
	}
	// An inverted certificate renews at once.
	bad := &x509.Certificate{NotBefore: epoch, NotAfter: epoch.Add(-time.Hour)}
	if got := RenewalDelay(bad, epoch, nil); got != 0 {
		t.Errorf("inverted cert delay = %v", got)
	}
}

func TestRenewalDelay(t *testing.T) {
	cert := &x509.Certificate{NotBefore: epoch, NotAfter: epoch.Add(100 * time.Hour)}
	r := rand.New(constSource(0))
	if got := RenewalDelay(cert, epoch.Add(10*time.Hour), r); got != 40*time.Hour {
		t.Errorf("delay = %v, want 40h", got)
	}
	if got := RenewalDelay(cert, epoch.Add(90*time.Hour), r); got != 0 {
		t.Errorf("overdue delay = %v, want 0", got)
	}
	if got := RenewalDelay(cert, epoch, nil); got < 50*time.Hour || got > 80*time.Hour {
		t.Errorf("global-source delay = %v", got)
	}
}

type constSource uint64

func (c constSource) Uint64() uint64 { return uint64(c) }
