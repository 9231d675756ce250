package worker

import (
	"errors"
	"github.com/shoal-project/shoal/internal/testutil"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	api "github.com/shoal-project/shoal/proto"
)

func TestTaskRunsThroughEveryState(t *testing.T) {
	h := newHarness(t, 1)
	h.start()
	h.cluster.assign(task("t1", api.TaskState_RUNNING))
	st := h.waitState("t1", api.TaskState_RUNNING)

	want := []api.TaskState{api.TaskState_ACCEPTED, api.TaskState_PREPARING, api.TaskState_READY,
		api.TaskState_STARTING, api.TaskState_RUNNING}
	if got := h.reportedStates("t1"); !slices.Equal(got, want) {
		t.Fatalf("reported %v, want %v", got, want)
	}
	if st.GetContainer().GetPid() != 4242 || st.GetContainer().GetContainerId() != "t1" {
		t.Errorf("RUNNING carries container status %v", st.GetContainer())
	}
	if st.GetTimestamp() == nil || st.GetTimestamp().AsTime().After(h.clock.Now()) {
		t.Errorf("timestamp %v is not from the injected clock (now %v)", st.GetTimestamp(), h.clock.Now())
	}
	if sess := h.mgrs[0].sessions(); sess[0].GetDescription().GetHostname() != "fakehost" {
		t.Errorf("session request carries description %v", sess[0].GetDescription())
	}

	h.exec.exit("t1", 0)
	h.waitState("t1", api.TaskState_COMPLETE)
	h.checkForward("t1")
	if n := h.exec.count("run", "t1"); n != 1 {
		t.Errorf("process started %d times", n)
	}
}

func TestNonZeroExitFails(t *testing.T) {
	h := newHarness(t, 1)
	h.start()
	h.cluster.assign(task("t1", api.TaskState_RUNNING))
	h.waitState("t1", api.TaskState_RUNNING)
	h.exec.exit("t1", 3)
	st := h.waitState("t1", api.TaskState_FAILED)
	if st.GetErr() != "task: non-zero exit (3)" || st.GetContainer().GetExitCode() != 3 {
		t.Errorf("FAILED status: err %q, container %v", st.GetErr(), st.GetContainer())
	}
}

func TestPrepareRejected(t *testing.T) {
	h := newHarness(t, 1)
	h.exec.prepareErr["t1"] = []error{Rejected(errors.New(`image "nope" not found`))}
	h.start()
	h.cluster.assign(task("t1", api.TaskState_RUNNING))
	st := h.waitState("t1", api.TaskState_REJECTED)
	if st.GetErr() != `image "nope" not found` {
		t.Errorf("REJECTED err %q", st.GetErr())
	}
	if n := h.exec.count("prepare", "t1"); n != 1 {
		t.Errorf("a rejected task was prepared %d times", n)
	}
	if n := h.exec.count("start", "t1"); n != 0 {
		t.Errorf("a rejected task was started")
	}
}

func TestPrepareRetriesTransientErrors(t *testing.T) {
	h := newHarness(t, 1)
	h.tweak = func(c *Config) { c.PrepareRetries = 2 }
	flaky := errors.New("registry: connection reset")
	h.exec.prepareErr["t1"] = []error{flaky}               // recovers
	h.exec.prepareErr["t2"] = []error{flaky, flaky, flaky} // gives up after 1+2 attempts
	h.start()
	h.cluster.assign(task("t1", api.TaskState_RUNNING))
	h.cluster.assign(task("t2", api.TaskState_RUNNING))
	h.waitState("t1", api.TaskState_RUNNING)
	st := h.waitState("t2", api.TaskState_FAILED)
	if st.GetErr() != flaky.Error() {
		t.Errorf("FAILED err %q", st.GetErr())
	}
	if n := h.exec.count("prepare", "t2"); n != 3 {
		t.Errorf("t2 prepared %d times, want 3", n)
	}
}

func TestDesiredReadyHoldsThenRuns(t *testing.T) {
	h := newHarness(t, 1)
	h.start()
	h.cluster.assign(task("t1", api.TaskState_READY))
	h.waitState("t1", api.TaskState_READY)
	if h.exec.count("start", "t1") != 0 {
		t.Fatal("a task held at READY was started")
	}
	h.cluster.assign(task("t1", api.TaskState_RUNNING))
	h.waitState("t1", api.TaskState_RUNNING)
}

func TestDesiredShutdownKeepsContainerUntilRemoved(t *testing.T) {
	h := newHarness(t, 1)
	h.start()
	h.cluster.assign(task("t1", api.TaskState_RUNNING))
	h.waitState("t1", api.TaskState_RUNNING)

	h.cluster.assign(task("t1", api.TaskState_SHUTDOWN))
	st := h.waitState("t1", api.TaskState_SHUTDOWN)
	if st.GetContainer().GetExitCode() != 143 {
		t.Errorf("SHUTDOWN container status %v", st.GetContainer())
	}
	if !h.exec.has("t1") || h.exec.count("remove", "t1") != 0 {
		t.Fatal("the container of a shut down task was removed while still assigned")
	}
	if slices.Contains(h.cluster.states("t1"), api.TaskState_FAILED) {
		t.Error("a requested shutdown was reported FAILED")
	}

	h.cluster.unassign("t1")
	h.waitFor("container removed", func() bool { return !h.exec.has("t1") && h.runnerCount() == 0 })
	h.stop()
	db, load, err := openTaskDB(h.dir, taskDBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.close()
	if len(load.tasks) != 0 {
		t.Errorf("the task db still holds %d tasks", len(load.tasks))
	}
}

func TestDesiredRemoveShutsDownAndRemoves(t *testing.T) {
	h := newHarness(t, 1)
	h.start()
	h.cluster.assign(task("t1", api.TaskState_RUNNING))
	h.waitState("t1", api.TaskState_RUNNING)
	h.cluster.assign(task("t1", api.TaskState_REMOVE))
	h.waitState("t1", api.TaskState_SHUTDOWN)
	h.waitFor("container removed", func() bool { return !h.exec.has("t1") })
	if h.exec.count("shutdown", "t1") != 1 {
		t.Errorf("calls: %v", h.exec.callList())
	}
}

func TestUnassignedRunningTaskIsShutDownAndRemoved(t *testing.T) {
	h := newHarness(t, 1)
	h.start()
	h.cluster.assign(task("t1", api.TaskState_RUNNING))
	h.waitState("t1", api.TaskState_RUNNING)
	h.cluster.unassign("t1")
	h.waitFor("container removed", func() bool { return !h.exec.has("t1") && h.runnerCount() == 0 })
	if h.exec.count("shutdown", "t1") != 1 || h.exec.count("remove", "t1") != 1 {
		t.Errorf("calls: %v", h.exec.callList())
	}
}

func TestShutdownInterruptsALongPrepare(t *testing.T) {
	h := newHarness(t, 1)
	h.exec.prepareGate["t1"] = make(chan struct{}) // never opens
	h.start()
	h.cluster.assign(task("t1", api.TaskState_RUNNING))
	h.waitFor("prepare under way", func() bool { return h.exec.count("prepare", "t1") == 1 })
	h.cluster.assign(task("t1", api.TaskState_SHUTDOWN))
	h.waitState("t1", api.TaskState_SHUTDOWN)
	if slices.Contains(h.cluster.states("t1"), api.TaskState_FAILED) || h.exec.count("prepare", "t1") != 1 {
		t.Errorf("an interrupted prepare was treated as a failure: %v %v", h.cluster.states("t1"), h.exec.callList())
	}
}

func TestCompleteSetRemovesStaleTasksAndOrphansOnlyOnceItArrives(t *testing.T) {
	h := newHarness(t, 1)
	h.start()
	h.cluster.assign(task("keep", api.TaskState_RUNNING))
	h.cluster.assign(task("stale", api.TaskState_RUNNING))
	h.waitState("keep", api.TaskState_RUNNING)
	h.waitState("stale", api.TaskState_RUNNING)
	h.stop()

	// While the agent was down, "stale" was unassigned, and a container
	// nobody owns appeared.
	h.cluster.mu.Lock()
	delete(h.cluster.tasks, "stale")
	h.cluster.mu.Unlock()
	h.exec.addContainer("orphan")
	hold := make(chan struct{})
	h.mgrs[0].set(func(m *fakeManager) { m.hold = hold })

	h.start()
	hb := h.mgrs[0].heartbeatCount()
	h.waitFor("a session with heartbeats", func() bool { return h.mgrs[0].heartbeatCount() >= hb+3 })
	if h.exec.count("remove", "stale") != 0 || !h.exec.running("stale") || !h.exec.has("orphan") {
		t.Fatal("something was removed before the complete set arrived")
	}

	close(hold)
	h.waitFor("stale task and orphan removed", func() bool { return !h.exec.has("stale") && !h.exec.has("orphan") })
	if !h.exec.running("keep") || h.exec.count("run", "keep") != 1 || h.exec.count("shutdown", "keep") != 0 {
		t.Errorf("the assigned task was disturbed: %v", h.exec.callList())
	}
}

func TestRestartReattachesWithoutManagers(t *testing.T) {
	h := newHarness(t, 1)
	h.start()
	h.cluster.assign(task("t1", api.TaskState_RUNNING))
	h.waitRunning("t1")
	h.stop()
	if !h.exec.running("t1") {
		t.Fatal("stopping the agent stopped the container")
	}

	h.mgrs[0].set(func(m *fakeManager) { m.refuse = status.Error(codes.Unavailable, "down") })
	h.start()
	h.waitFor("the resumed task waited on again", func() bool { return h.exec.count("wait", "t1") == 2 })
	if n := h.exec.count("start", "t1"); n != 1 {
		t.Errorf("Start called %d times", n)
	}
	h.exec.exit("t1", 0)
	h.waitFor("COMPLETE recorded with no manager", func() bool {
		return slices.Contains(h.reportedStates("t1"), api.TaskState_COMPLETE)
	})
	h.mgrs[0].set(func(m *fakeManager) { m.refuse = nil })
	h.waitState("t1", api.TaskState_COMPLETE)
	if n := h.exec.count("run", "t1"); n != 1 {
		t.Errorf("the process was started %d times", n)
	}
}

// A refused session is retried at least every two heartbeat periods
// however long the refusals last, whatever BackoffMax says: a new leader
// marks down a node that has not opened a session within its grace (six
// periods), and a backoff grown during an election (8 s by default) could
// otherwise sleep through all of it; a one-manager swarm with a 1 s
// heartbeat had its node marked down and its tasks replaced so.
func TestSessionRetriesWithinTwoHeartbeatPeriods(t *testing.T) {
	h := newHarness(t, 1)
	const period = 500 * time.Millisecond
	h.tweak = func(c *Config) {
		c.HeartbeatPeriod, c.BackoffMin, c.BackoffMax = period, 10*time.Millisecond, time.Hour
	}
	m := h.mgrs[0]
	m.set(func(m *fakeManager) { m.refuse, m.now = status.Error(codes.Unavailable, "no leader"), h.clock.Now })
	h.start()
	refused := func() []time.Time {
		m.mu.Lock()
		defer m.mu.Unlock()
		return slices.Clone(m.refusedAt)
	}
	h.waitFor("16 refused sessions", func() bool { return len(refused()) >= 16 })
	at := refused()
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap > 2*period+clockStep {
			t.Errorf("attempt %d came %v after the one before: more than two heartbeat periods (%v)", i+1, gap, 2*period)
		}
	}
}

func TestRestartAfterStartingDoesNotStartTwice(t *testing.T) {
	h := newHarness(t, 1)
	h.start()
	h.cluster.assign(task("t1", api.TaskState_RUNNING))
	h.waitState("t1", api.TaskState_RUNNING)
	h.stop()
	// A crash between Start and the record of RUNNING.
	db, _, err := openTaskDB(h.dir, taskDBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.putStatus("t1", &api.TaskStatus{State: api.TaskState_STARTING}); err != nil {
		t.Fatal(err)
	}
	db.close()

	h.start()
	h.waitFor("RUNNING again", func() bool {
		return slices.Contains(h.reportedStates("t1"), api.TaskState_RUNNING) && h.exec.count("start", "t1") == 2
	})
	if n := h.exec.count("run", "t1"); n != 1 {
		t.Errorf("the process was started %d times", n)
	}
}

func TestFailoverToAnotherManager(t *testing.T) {
	h := newHarness(t, 2)
	h.start()
	h.waitFor("a session", func() bool { return h.sessionCount() == 1 })
	first, second := h.mgrs[0], h.mgrs[1]
	if len(first.sessions()) == 0 {
		first, second = second, first
	}
	// The first manager stops accepting statuses: the session ends, the
	// statuses stay pending and go to the other manager.
	first.set(func(m *fakeManager) { m.statusErr = status.Error(codes.Unavailable, "no leader") })
	h.cluster.assign(task("t1", api.TaskState_RUNNING))
	h.waitFor("a session with the other manager", func() bool { return len(second.sessions()) == 1 })
	if got, want := second.sessions()[0].GetSessionId(), first.addr+"/1"; got != want {
		t.Errorf("new session offered ID %q, want %q", got, want)
	}
	h.waitState("t1", api.TaskState_RUNNING)

	// The second one crashes: back to the first.
	first.set(func(m *fakeManager) { m.statusErr = nil })
	second.endStreams()
	h.waitFor("a new session with the first manager", func() bool { return len(first.sessions()) == 2 })
	h.exec.exit("t1", 0)
	h.waitState("t1", api.TaskState_COMPLETE)
	if h.exec.count("run", "t1") != 1 || h.exec.count("shutdown", "t1") != 0 || h.exec.count("remove", "t1") != 0 {
		t.Errorf("failover disturbed the container: %v", h.exec.callList())
	}
	h.checkForward("t1")
	if got := h.agent.Managers(); len(got) != 2 {
		t.Errorf("managers %v", got)
	}
}

// A status report that runs out of time (a leader slow to commit) keeps
// the session: the report goes again later in the same session. Only
// MaxStatusTimeouts in a row end it.
func TestStatusTimeoutsKeepTheSessionUntilTooMany(t *testing.T) {
	h := newHarness(t, 1)
	m := h.mgrs[0]
	h.start()
	h.waitFor("a session", func() bool { return len(m.sessions()) == 1 })
	calls := func() int {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.statusCalls
	}
	slow := status.Error(codes.DeadlineExceeded, "timed out waiting for the write to commit")
	m.set(func(m *fakeManager) { m.statusErr = slow })
	before := calls()
	h.cluster.assign(task("t1", api.TaskState_RUNNING))
	h.waitFor("two reports timed out", func() bool { return calls() >= before+2 })
	m.set(func(m *fakeManager) { m.statusErr = nil })
	h.waitState("t1", api.TaskState_RUNNING)
	if n := len(m.sessions()); n != 1 {
		t.Fatalf("%d sessions: two timed-out reports ended the session", n)
	}
	// Three in a row end it; the reports go in the next session.
	m.set(func(m *fakeManager) { m.statusErr = slow })
	before = calls()
	h.exec.exit("t1", 0)
	h.waitFor("three reports timed out", func() bool { return calls() >= before+3 })
	m.set(func(m *fakeManager) { m.statusErr = nil })
	h.waitFor("a second session", func() bool { return len(m.sessions()) == 2 })
	h.waitState("t1", api.TaskState_COMPLETE)
	if n := calls() - before; n < 3 {
		t.Fatalf("the session ended after %d status calls, want 3 timeouts", n)
	}
}

func TestHeartbeatFailuresEndTheSession(t *testing.T) {
	h := newHarness(t, 1)
	m := h.mgrs[0]
	h.start()
	h.waitFor("a session", func() bool { return len(m.sessions()) == 1 })
	hb := m.heartbeatCount()
	m.set(func(m *fakeManager) { m.hbFail = 3 })
	h.waitFor("a second session", func() bool { return len(m.sessions()) == 2 })
	if n := m.heartbeatCount() - hb; n < 3 {
		t.Errorf("session ended after %d failed heartbeats, want 3", n)
	}
	if got := m.sessions()[1].GetSessionId(); got != m.addr+"/1" {
		t.Errorf("reconnect offered session ID %q", got)
	}

	// An unknown session ends at the first heartbeat; the new session does
	// not offer the refused ID.
	m.set(func(m *fakeManager) { m.liveSessions = map[string]bool{} })
	h.waitFor("a third session", func() bool { return len(m.sessions()) == 3 })
	if got := m.sessions()[2].GetSessionId(); got != "" {
		t.Errorf("after an invalid session the agent offered ID %q", got)
	}
}

func TestLogSubscriptions(t *testing.T) {
	h := newHarness(t, 1)
	m := h.mgrs[0]
	h.exec.logs["t1"] = []string{"hello", "world"}
	h.start()
	h.cluster.assign(task("t1", api.TaskState_RUNNING))
	h.waitState("t1", api.TaskState_RUNNING)

	m.subs <- &api.SubscriptionMessage{Id: "s1", Selector: &api.LogSelector{TaskIds: []string{"t1"}},
		Options: &api.LogSubscriptionOptions{Tail: -1}}
	h.waitFor("s1 closed", func() bool { _, closed := m.publishedFor("s1"); return closed })
	lines, _ := m.publishedFor("s1")
	if len(lines) != 2 || string(lines[0].GetData()) != "hello\n" || string(lines[1].GetData()) != "world\n" {
		t.Fatalf("s1 lines %v", lines)
	}
	if c := lines[0].GetContext(); c.GetTaskId() != "t1" || c.GetServiceId() != "svc1" || c.GetNodeId() != "n1" {
		t.Errorf("line context %v", c)
	}

	m.subs <- &api.SubscriptionMessage{Id: "s2", Selector: &api.LogSelector{ServiceIds: []string{"svc1"}},
		Options: &api.LogSubscriptionOptions{Follow: true, Tail: -1}}
	h.waitFor("s2 lines", func() bool { l, _ := m.publishedFor("s2"); return len(l) == 2 })
	if _, closed := m.publishedFor("s2"); closed {
		t.Fatal("a followed subscription closed by itself")
	}
	m.subs <- &api.SubscriptionMessage{Id: "s2", Close: true}
	h.waitFor("s2 closed", func() bool { _, closed := m.publishedFor("s2"); return closed })

	m.subs <- &api.SubscriptionMessage{Id: "s3", Selector: &api.LogSelector{TaskIds: []string{"elsewhere"}}}
	h.waitFor("s3 closed", func() bool { _, closed := m.publishedFor("s3"); return closed })
	if l, _ := m.publishedFor("s3"); len(l) != 0 {
		t.Errorf("s3 matched no task but got %d lines", len(l))
	}
}

func TestStatusBehindAtTheManagerIsSentAgain(t *testing.T) {
	h := newHarness(t, 1)
	h.start()
	h.cluster.assign(task("t1", api.TaskState_RUNNING))
	h.waitState("t1", api.TaskState_RUNNING)
	// The manager lost the update (a failover before it was committed).
	h.cluster.mu.Lock()
	h.cluster.tasks["t1"].Status = &api.TaskStatus{State: api.TaskState_STARTING}
	h.cluster.mu.Unlock()
	h.mgrs[0].endStreams()
	h.waitFor("RUNNING sent again", func() bool {
		n := 0
		for _, s := range h.cluster.states("t1") {
			if s == api.TaskState_RUNNING {
				n++
			}
		}
		return n == 2
	})
	if h.exec.count("run", "t1") != 1 {
		t.Errorf("calls: %v", h.exec.callList())
	}
}

// A complete set too large for one message comes in parts (More): the
// agent applies it once whole, so the tasks of later parts are not taken
// for unassigned when the first part arrives.
func TestCompleteSetInPartsIsAppliedWhole(t *testing.T) {
	h := newHarness(t, 1)
	h.start()
	for _, id := range []string{"a-keep", "b-keep", "c-stale"} {
		h.cluster.assign(task(id, api.TaskState_RUNNING))
	}
	for _, id := range []string{"a-keep", "b-keep", "c-stale"} {
		h.waitState(id, api.TaskState_RUNNING)
	}
	h.stop()

	h.cluster.mu.Lock()
	delete(h.cluster.tasks, "c-stale")
	h.cluster.mu.Unlock()
	last := make(chan struct{})
	h.mgrs[0].set(func(m *fakeManager) { m.splitAt, m.holdLast = 1, last })

	h.start()
	hb := h.mgrs[0].heartbeatCount()
	h.waitFor("a session with heartbeats", func() bool { return h.mgrs[0].heartbeatCount() >= hb+3 })
	if !h.exec.running("b-keep") || !h.exec.running("c-stale") {
		t.Fatalf("the first part was applied as the whole set: %v", h.exec.callList())
	}
	close(last)
	h.waitFor("stale task removed", func() bool { return !h.exec.has("c-stale") })
	for _, id := range []string{"a-keep", "b-keep"} {
		if !h.exec.running(id) || h.exec.count("shutdown", id) != 0 {
			t.Errorf("%s was disturbed: %v", id, h.exec.callList())
		}
	}
}

// RetryNow ends the wait before the next session at once and resets the
// backoff (node/ calls it when the gossip peers come back after a
// partition): with an hour's backoff, a new session opens without the
// clock moving.
func TestRetryNowCutsTheBackoffShort(t *testing.T) {
	h := newHarness(t, 1)
	h.tweak = func(c *Config) { c.BackoffMin, c.BackoffMax = time.Hour, time.Hour }
	m := h.mgrs[0]
	h.start()
	h.waitFor("a session", func() bool { return len(m.sessions()) == 1 })
	m.endStreams()
	time.Sleep(100 * time.Millisecond) // the agent sees the end and waits its backoff
	if n := len(m.sessions()); n != 1 {
		t.Fatalf("%d sessions before RetryNow with an hour's backoff", n)
	}
	h.agent.RetryNow()
	testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, func() bool { return len(m.sessions()) == 2 },
		"no new session after RetryNow")
}
