package fakeexec

import (
	"sync"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

// Rule scripts what happens to the tasks it matches. A task matches when
// every selector that is set matches; a rule with no selector matches every
// task. Of the rules that match a task, the first added wins, once, when
// the task's first controller is made: the outcome stays with the
// container, so an agent restart does not change it.
type Rule struct {
	// Image selects tasks whose container image is exactly this.
	Image string
	// Service selects tasks of the service with this name.
	Service string
	// Host selects tasks on the executor with this hostname.
	Host string
	// Match, when set, selects the tasks it returns true for.
	Match func(*api.Task) bool
	// Times bounds how many tasks the rule applies to; 0 is no bound.
	Times int

	// PrepareErr makes Prepare fail with it (every call). Wrap it in
	// worker.Rejected for a failure that retrying cannot fix, such as an
	// image that does not exist.
	PrepareErr error
	// StartErr makes Start fail with it.
	StartErr error
	// Exit makes the process exit on its own with ExitCode, After its start.
	Exit     bool
	ExitCode int
	// Unhealthy makes the task's health check fail: with After 0, Start
	// fails with an *ExitError (137, "container unhealthy"), as the
	// containerd executor's Start does when a task turns unhealthy before
	// its first passing probe; otherwise the process is killed After its
	// start and Wait returns that error.
	Unhealthy bool
	// After is the time on the executor's clock between the start and
	// the exit (Exit) or the failed health check (Unhealthy).
	After time.Duration
}

func (r *Rule) matches(t *api.Task, host string) bool {
	switch {
	case r.Image != "" && t.GetSpec().GetContainer().GetImage() != r.Image:
		return false
	case r.Service != "" && t.GetServiceAnnotations().GetName() != r.Service:
		return false
	case r.Host != "" && host != r.Host:
		return false
	case r.Match != nil && !r.Match(t):
		return false
	}
	return true
}

// Rules is an ordered set of rules shared by executors. The zero value is
// empty and ready; it is safe for concurrent use.
type Rules struct {
	mu    sync.Mutex
	next  int
	rules []*ruleEntry
}

type ruleEntry struct {
	id   int
	rule Rule
	used int
}

// Add appends a rule and returns a function that removes it. Tasks whose
// outcome the rule already decided keep it.
func (rs *Rules) Add(r Rule) (remove func()) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.next++
	id := rs.next
	rs.rules = append(rs.rules, &ruleEntry{id: id, rule: r})
	return func() {
		rs.mu.Lock()
		defer rs.mu.Unlock()
		for i, e := range rs.rules {
			if e.id == id {
				rs.rules = append(rs.rules[:i:i], rs.rules[i+1:]...)
				return
			}
		}
	}
}

// Clear removes every rule.
func (rs *Rules) Clear() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.rules = nil
}

// Used tells how many tasks the rules have been applied to so far.
func (rs *Rules) Used() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	n := 0
	for _, e := range rs.rules {
		n += e.used
	}
	return n
}

// decide returns the outcome of the first rule that matches t and still
// has uses left, or nil (the task runs until stopped).
func (rs *Rules) decide(t *api.Task, host string) *Rule {
	if rs == nil {
		return nil
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, e := range rs.rules {
		if e.rule.Times > 0 && e.used >= e.rule.Times {
			continue
		}
		if e.rule.matches(t, host) {
			e.used++
			r := e.rule
			return &r
		}
	}
	return nil
}
