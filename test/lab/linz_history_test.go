package lab_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
)

// The history TestLinearizable records and porcupine checks. The objects are configs whose label "v" is a
// register: a read is GetConfig (through any manager's control socket: followers forward Control calls
// to the leader), a write is UpdateConfig with the version the same client just read, which raft applies
// only while the config is still at that version (compare-and-set). Every value written is unique, so a
// config is at the version a client read exactly when its value is still the one that client read: the
// model needs only the values.

// linzInput is one operation on register Key: a read, or a compare-and-set from Expect to Value.
type linzInput struct {
	Key    int
	Write  bool
	Expect string
	Value  string
}

// linzOutput is what the operation returned. Unknown: a write whose outcome the client cannot know (a
// timeout, a lost connection, "may or may not have been applied"); its return is after every other
// operation (infinity). finish keeps such a write only when some read saw its value, and then it was
// applied (see prune): so the model applies it, at some time after its call.
type linzOutput struct {
	Value    string // a read's value
	Conflict bool   // a write refused for a stale version: definitely not applied
	Unknown  bool
}

// linzInitial is the value every register is created with.
const linzInitial = "init"

var linzModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[int][]porcupine.Operation{}
		for _, op := range h {
			k := op.Input.(linzInput).Key
			by[k] = append(by[k], op)
		}
		keys := make([]int, 0, len(by))
		for k := range by {
			keys = append(keys, k)
		}
		sort.Ints(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return linzInitial },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(string), input.(linzInput), output.(linzOutput)
		switch {
		case !in.Write:
			return out.Value == s, s
		case out.Conflict:
			return s != in.Expect, s
		default:
			return s == in.Expect, in.Value
		}
	},
	DescribeOperationMetadata: func(m any) string {
		if m == nil {
			return ""
		}
		return "via " + m.(string)
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linzInput), output.(linzOutput)
		if !in.Write {
			return fmt.Sprintf("get(c%d) -> %s", in.Key, out.Value)
		}
		res := "ok"
		switch {
		case out.Unknown:
			res = "unknown"
		case out.Conflict:
			res = "conflict"
		}
		return fmt.Sprintf("cas(c%d, %s -> %s) -> %s", in.Key, in.Expect, in.Value, res)
	},
}

// linzHistory collects operations from concurrent clients. Times are nanoseconds since start
// (monotonic).
type linzHistory struct {
	start time.Time

	mu  sync.Mutex
	ops []porcupine.Operation
	// counts of what the clients saw, for the summary
	reads, readErrs, writesOK, conflicts, unknown, notSent int
	codes                                                  map[codes.Code]int
	firstMsg                                               map[codes.Code]string
	faults                                                 []string // when each fault began and ended
}

// fault notes a step of the fault loop at the current time.
func (h *linzHistory) fault(format string, a ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.faults = append(h.faults, fmt.Sprintf("%10.3f %s", float64(h.now())/1e6, fmt.Sprintf(format, a...)))
}

// faultLog is the fault loop's steps, one a line (milliseconds since the start).
func (h *linzHistory) faultLog() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.faults, "\n") + "\n"
}

func newLinzHistory() *linzHistory {
	return &linzHistory{start: time.Now(), codes: map[codes.Code]int{}, firstMsg: map[codes.Code]string{}}
}

func (h *linzHistory) now() int64 { return int64(time.Since(h.start)) }

// pending marks an operation's return time as unknown until finish.
const pending = -1

func (h *linzHistory) add(op porcupine.Operation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, op)
}

func (h *linzHistory) count(f func(h *linzHistory)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(h)
}

// finish returns the history to check: pruned (see prune), with every pending operation returning after
// all others (infinity). The history must end with a read of every register made after every other
// operation had returned or timed out, on a healthy cluster.
func (h *linzHistory) finish() (ops []porcupine.Operation, dropped int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return prune(h.ops)
}

// prune drops the writes of unknown outcome whose value no read returned, and sets the return time of
// the others to infinity.
//
// Why this is exact: values are unique and a client only writes over a value it read. Were an unseen
// write W (x -> y) applied in some linearization, the register would hold y, or a value written over y
// by a client that read y, from then on; the final reads, linearized after W's call, would then return
// y or a descendant, so some read returned y. None did, so no linearization applies W (or applies it
// after the final reads, where it changes no result): the history with W is linearizable exactly when
// the one without W is. A write of unknown outcome whose value was read was applied, since nothing else
// writes that value: the model applies it. Without the pruning, every pending write could also be
// linearized as a no-op anywhere after its call, and porcupine's search grows with the subsets of them
// (minutes for a few hundred).
func prune(in []porcupine.Operation) (ops []porcupine.Operation, dropped int) {
	seen := map[int]map[string]bool{}
	end := int64(0)
	for _, op := range in {
		end = max(end, op.Return, op.Call)
		if i := op.Input.(linzInput); !i.Write {
			if seen[i.Key] == nil {
				seen[i.Key] = map[string]bool{}
			}
			seen[i.Key][op.Output.(linzOutput).Value] = true
		}
	}
	for _, op := range in {
		if op.Output.(linzOutput).Unknown {
			if i := op.Input.(linzInput); !seen[i.Key][i.Value] {
				dropped++
				continue
			}
			op.Return = end + 1
		}
		ops = append(ops, op)
	}
	return ops, dropped
}

// sawErr counts an error by code and keeps the first message of each code. Called with mu held.
func (h *linzHistory) sawErr(err error) {
	c := status.Code(err)
	h.codes[c]++
	if _, ok := h.firstMsg[c]; !ok {
		h.firstMsg[c] = status.Convert(err).Message()
	}
}

func (h *linzHistory) summary() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var cs []string
	for c, n := range h.codes {
		msg := h.firstMsg[c]
		if len(msg) > 160 {
			msg = msg[:160] + "..."
		}
		cs = append(cs, fmt.Sprintf("%s: %d (first: %q)", c, n, msg))
	}
	sort.Strings(cs)
	return fmt.Sprintf("%d operations: %d reads (%d failed, not recorded), writes %d ok, %d conflicts, %d unknown outcome, %d not sent; error codes {%s}",
		len(h.ops), h.reads, h.readErrs, h.writesOK, h.conflicts, h.unknown, h.notSent, strings.Join(cs, ", "))
}

// linzVia names the host whose control socket served an operation (index into the lab's hosts).
func linzVia(i int) string { return fmt.Sprintf("h%d", i+1) }

// linzClient is one client of the history: until ctx ends, it reads a random register through a random
// manager and, every other time, writes a new unique value over the one it read, through another random
// manager. Each call is bounded by opTimeout.
type linzClient struct {
	id      int
	hist    *linzHistory
	ctls    []api.ControlClient // one per manager's control socket
	configs []string            // register k is config configs[k] (its name and ID)
	ids     []string
	rng     *rand.Rand
	seq     int
}

const linzOpTimeout = 4 * time.Second

func (c *linzClient) run(ctx context.Context) {
	for ctx.Err() == nil {
		pause := time.Duration(2+c.rng.IntN(10)) * time.Millisecond
		if !c.step(ctx) {
			pause *= 5 // after an error (a host down): fewer calls that fail at once
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

// step makes one read, and maybe a write; it reports whether they had no error.
func (c *linzClient) step(ctx context.Context) bool {
	k := c.rng.IntN(len(c.ids))
	via := c.rng.IntN(len(c.ctls))
	ctl := c.ctls[via]
	cctx, cancel := context.WithTimeout(ctx, linzOpTimeout)
	call := c.hist.now()
	resp, err := ctl.GetConfig(cctx, &api.GetConfigRequest{ConfigId: c.ids[k]})
	ret := c.hist.now()
	cancel()
	if err != nil {
		// A failed read changed nothing: it is left out of the history.
		c.hist.count(func(h *linzHistory) { h.readErrs++; h.sawErr(err) })
		return false
	}
	seen := resp.GetConfig().GetSpec().GetAnnotations().GetLabels()["v"]
	c.hist.add(porcupine.Operation{ClientId: c.id, Input: linzInput{Key: k}, Call: call,
		Output: linzOutput{Value: seen}, Return: ret, Metadata: linzVia(via)})
	c.hist.count(func(h *linzHistory) { h.reads++ })
	if c.rng.IntN(2) == 0 || ctx.Err() != nil {
		return true
	}
	c.seq++
	val := fmt.Sprintf("%d.%d", c.id, c.seq)
	via = c.rng.IntN(len(c.ctls))
	ctl = c.ctls[via]
	req := &api.UpdateConfigRequest{ConfigId: c.ids[k], ConfigVersion: resp.GetConfig().GetMeta().GetVersion(),
		Spec: &api.ConfigSpec{Annotations: &api.Annotations{Name: c.configs[k], Labels: map[string]string{"v": val}}}}
	cctx, cancel = context.WithTimeout(ctx, linzOpTimeout)
	call = c.hist.now()
	_, err = ctl.UpdateConfig(cctx, req)
	ret = c.hist.now()
	cancel()
	in := linzInput{Key: k, Write: true, Expect: seen, Value: val}
	var out linzOutput
	switch {
	case err == nil:
		c.hist.count(func(h *linzHistory) { h.writesOK++ })
	case status.Code(err) == codes.Aborted:
		out.Conflict = true
		c.hist.count(func(h *linzHistory) { h.conflicts++; h.sawErr(err) })
	case notSent(err):
		// Never reached a manager, or the cluster says it was not applied: left out. Should it have been
		// applied after all, a later read of its unique value fails the check.
		c.hist.count(func(h *linzHistory) { h.notSent++; h.sawErr(err) })
		return false
	default:
		out.Unknown = true
		ret = pending
		c.hist.count(func(h *linzHistory) { h.unknown++; h.sawErr(err) })
	}
	c.hist.add(porcupine.Operation{ClientId: c.id, Input: in, Call: call, Output: out, Return: ret, Metadata: linzVia(via)})
	return err == nil || out.Conflict
}

// notSent tells a write that certainly changed nothing: the client could not connect to the control
// socket (its host is down), or the cluster answered that the change was not applied.
func notSent(err error) bool {
	msg := status.Convert(err).Message()
	return strings.Contains(msg, "the change was not applied") ||
		status.Code(err) == codes.Unavailable && strings.Contains(msg, "Error while dialing")
}

// checkLinearizable runs porcupine over the history (at most timeout). On a violation or a checker that
// ran out of time, it writes porcupine's HTML visualization into dir and returns an error naming it.
func checkLinearizable(ops []porcupine.Operation, timeout time.Duration, dir, faults string) (time.Duration, error) {
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(linzModel, ops, timeout)
	took := time.Since(start)
	if res == porcupine.Ok {
		return took, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return took, fmt.Errorf("porcupine: %s, and the visualization could not be written: %v", res, err)
	}
	path := filepath.Join(dir, fmt.Sprintf("linearizability-%s.html", time.Now().UTC().Format("20060102T150405")))
	if err := porcupine.VisualizePath(linzModel, info, path); err != nil {
		return took, fmt.Errorf("porcupine: %s, and the visualization could not be written: %v", res, err)
	}
	if err := os.WriteFile(strings.TrimSuffix(path, ".html")+".txt", []byte("faults:\n"+faults+"\noperations:\n"+linzDump(ops)), 0o644); err != nil {
		return took, fmt.Errorf("porcupine: %s, and the history could not be written: %v", res, err)
	}
	if res == porcupine.Unknown {
		return took, fmt.Errorf("porcupine did not finish within %v over %d operations (partial visualization: %s; history in .txt beside it)", timeout, len(ops), path)
	}
	return took, fmt.Errorf("NOT LINEARIZABLE: porcupine found no valid order for %d operations; visualization: %s (history in .txt beside it)", len(ops), path)
}

// linzArtifactDir is where visualizations go (testutil.ArtifactDir).
func linzArtifactDir(t testing.TB) string { return testutil.ArtifactDir(t, "linearizability") }

// linzDump is the history as text, one operation a line in call order: call and return in milliseconds
// since the start, client, host, operation.
func linzDump(ops []porcupine.Operation) string {
	sorted := append([]porcupine.Operation(nil), ops...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Call < sorted[j].Call })
	var b strings.Builder
	for _, op := range sorted {
		via, _ := op.Metadata.(string)
		fmt.Fprintf(&b, "%10.3f %10.3f c%d %-3s %s\n", float64(op.Call)/1e6, float64(op.Return)/1e6, op.ClientId, via,
			linzModel.DescribeOperation(op.Input, op.Output))
	}
	return b.String()
}
