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
// finishes, if at all, after its client gave up. It also refuses them
// while this manager catches up with the log (raftstore.Node.CatchingUp: a
// restarted manager reads its snapshot, then applies what was committed
// since): at 1,000,000 tasks a restarted manager spent a third of its CPU
// on agents' handshakes while it replayed about 1,000 entries at 6 a
// second, for minutes, with the other two managers as the only quorum;
// agents do better on a manager that is up to date. Connections from other
// managers (pki.PeerProto) are always admitted: raft and the calls
// followers forward must get through precisely then; joining nodes
// (pki.JoinProto) are not refused for catching up, a join being rare and
// a user's command. Config.NoShedding turns both rules off.
type admission struct {
	shed *overload.Shedder // nil: admit everything (Config.NoShedding)
	// catchingUp counts the connections refused while this manager was
	// catching up with the log (raftstore.Node.CatchingUp).
	catchingUp atomic.Uint64

	mu         sync.Mutex
	logged     time.Time // when shedding was last logged
	atLog      overload.Stats
	upLogged   time.Time // when refusing while catching up was last logged
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
	if lag, behind := m.node.CatchingUp(); behind && !pki.OffersJoinProto(hello) {
		a.catchingUp.Add(1)
		m.logCatchingUp(lag)
		return errdefs.Unavailable("manager %s is catching up with the cluster's log (%d committed entries still to apply): new connection refused, connect to another manager", m.cfg.NodeID, lag)
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

// logCatchingUp logs, at most every shedLogEvery, the connections
// refused while catching up since the last such line.
func (m *Manager) logCatchingUp(lag uint64) {
	a := &m.admission
	now := m.cfg.Clock.Now()
	a.mu.Lock()
	if now.Sub(a.upLogged) < shedLogEvery {
		a.mu.Unlock()
		return
	}
	n, prev := a.catchingUp.Load(), a.atUpLogged
	a.upLogged, a.atUpLogged = now, n
	a.mu.Unlock()
	m.log.Warn("refusing agents' new connections while catching up with the cluster's log: they connect to another manager",
		"entries_to_apply", lag, "refused", n-prev)
}

// shedStats returns the admission's counts (zero when not shedding);
// Shed includes the connections refused while catching up.
func (m *Manager) shedStats() overload.Stats {
	if m.admission.shed == nil {
		return overload.Stats{}
	}
	st := m.admission.shed.Stats()
	st.Shed += m.admission.catchingUp.Load()
	return st
}
