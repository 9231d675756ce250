package manager

import (
	"crypto/tls"
	"sync"
	"time"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/overload"
	"github.com/shoal-project/shoal/pki"
)

// admission refuses new TLS connections while this manager's goroutines
// wait too long for a processor (internal/overload): after a leader change
// thousands of agents reconnect at once, and on a saturated machine each
// admitted handshake is a goroutine that delays the raft loop's and
// finishes, if at all, after its client gave up. Connections from other
// managers (pki.PeerProto) are always admitted: raft and the calls
// followers forward must get through precisely then.
type admission struct {
	shed *overload.Shedder // nil: admit everything (Config.NoShedding)

	mu     sync.Mutex
	logged time.Time // when shedding was last logged
	atLog  overload.Stats
}

// shedLogEvery bounds how often a manager logs that it is refusing
// connections.
const shedLogEvery = 10 * time.Second

// AdmitHandshake decides whether to go on with a new connection whose
// ClientHello was just read: the manager's server TLS config asks it
// (pki.Admit). An error aborts the handshake before its key exchange and
// signatures; the client sees a TLS alert and retries after its backoff.
func (m *Manager) AdmitHandshake(hello *tls.ClientHelloInfo) error {
	a := &m.admission
	if a.shed == nil || pki.OffersPeerProto(hello) || !a.shed.Shed() {
		return nil
	}
	m.logShedding()
	return errdefs.Unavailable("manager %s is overloaded (its goroutines wait too long for a processor): new connection refused, retry later", m.cfg.NodeID)
}

// logShedding logs, at most every shedLogEvery, what was refused since
// the last such line.
func (m *Manager) logShedding() {
	a := &m.admission
	now := m.cfg.Clock.Now()
	a.mu.Lock()
	if now.Sub(a.logged) < shedLogEvery {
		a.mu.Unlock()
		return
	}
	st, prev := a.shed.Stats(), a.atLog
	a.logged, a.atLog = now, st
	a.mu.Unlock()
	m.log.Warn("refusing new connections while overloaded",
		"p90_sched_wait", st.Wait, "refused_fraction", st.Fraction,
		"refused", st.Shed-prev.Shed, "admitted", st.Admitted-prev.Admitted)
}

// shedStats returns the admission's counts (zero when not shedding).
func (m *Manager) shedStats() overload.Stats {
	if m.admission.shed == nil {
		return overload.Stats{}
	}
	return m.admission.shed.Stats()
}
