package manager

import (
	"crypto/tls"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/overload"
	"github.com/shoal-project/shoal/pki"
)

// admission refuses new TLS connections while this manager's goroutines
// wait too long for a processor (internal/overload): after a leader change
// thousands of agents reconnect at once, and on a saturated machine each
// admitted handshake is a goroutine that delays the raft loop's and
// finishes, if at all, after its client gave up. It also refuses agents'
// new connections until its raft member has started: a restarted manager
// first reads its snapshot and the log after it (40-60 s at 1,000,000
// tasks), knows no leader meanwhile, and spent up to a third of its CPU on
// the handshakes of agents it could not serve. (Refusing them until it had
// also applied what was committed meanwhile was tried and dropped: that
// lasts minutes at 1M, and the agents it turned away all went to the one
// other live manager, which then led a failover at a 1.6 s run-queue wait.)
// Connections from other managers (pki.PeerProto) are always admitted:
// raft and the calls followers forward must get through precisely then;
// joining nodes (pki.JoinProto) are not refused for restoring, a join being
// rare and a user's command. Config.NoShedding turns both rules off.
type admission struct {
	shed *overload.Shedder // nil: admit everything (Config.NoShedding)
	// restoring counts the connections refused while this manager's raft
	// member had not started (it reads its snapshot and log first).
	restoring atomic.Uint64

	mu         sync.Mutex
	logged     time.Time // when shedding was last logged
	atLog      overload.Stats
	upLogged   time.Time // when refusing while restoring was last logged
	atUpLogged uint64
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
	if a.shed == nil || pki.OffersPeerProto(hello) {
		return nil
	}
	if !m.raftStarted() && !pki.OffersJoinProto(hello) {
		a.restoring.Add(1)
		m.logRestoring()
		return errdefs.Unavailable("manager %s is still reading its raft snapshot and log: new connection refused, connect to another manager", m.cfg.NodeID)
	}
	if !a.shed.Shed() {
		return nil
	}
	m.logShedding()
	return errdefs.Unavailable("manager %s is overloaded (its goroutines wait too long for a processor): new connection refused, retry later", m.cfg.NodeID)
}

// logShedding logs, at most every shedLogEvery, what was refused since
// the last such line.
func (m *Manager) logShedding() {
	a := &m.admission
	var st, prev overload.Stats
	if !a.logDue(&a.logged, m.cfg.Clock.Now(), func() { st, prev = a.shed.Stats(), a.atLog; a.atLog = st }) {
		return
	}
	m.log.Warn("refusing new connections while overloaded",
		"p90_sched_wait", st.Wait, "refused_fraction", st.Fraction,
		"refused", st.Shed-prev.Shed, "admitted", st.Admitted-prev.Admitted)
}

// logDue reports whether a line last logged at *last is due again at now
// (shedLogEvery); if so it records now and runs take, both under a.mu, so
// that take can read and advance the counts the line reports.
func (a *admission) logDue(last *time.Time, now time.Time, take func()) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if now.Sub(*last) < shedLogEvery {
		return false
	}
	*last = now
	take()
	return true
}

// raftStarted reports whether this manager's raft member has started:
// before, it is reading its snapshot and the log after it (40-60 s at
// 1,000,000 tasks) and knows no leader to serve an agent through.
func (m *Manager) raftStarted() bool {
	select {
	case <-m.node.Started():
		return true
	default:
		return false
	}
}

// logRestoring logs, at most every shedLogEvery, the connections refused
// while restoring since the last such line.
func (m *Manager) logRestoring() {
	a := &m.admission
	var n, prev uint64
	if !a.logDue(&a.upLogged, m.cfg.Clock.Now(), func() { n, prev = a.restoring.Load(), a.atUpLogged; a.atUpLogged = n }) {
		return
	}
	m.log.Warn("refusing agents' new connections while reading the raft snapshot and log: they connect to another manager",
		"refused", n-prev)
}

// shedStats returns the admission's counts (zero when not shedding);
// Shed includes the connections refused while restoring.
func (m *Manager) shedStats() overload.Stats {
	if m.admission.shed == nil {
		return overload.Stats{}
	}
	st := m.admission.shed.Stats()
	st.Shed += m.admission.restoring.Load()
	return st
}
