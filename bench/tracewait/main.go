// Command tracewait reads a Go execution trace (a manager's
// /debug/pprof/trace) and says what the goroutines running a given function
// waited on: for every goroutine whose stack ever mentions -func, the time
// it spent runnable (waiting for a CPU), running, and blocked, by the
// blocking call, and for each wait that ended, the stack of the goroutine
// that ended it (the lock holder that unlocked, the sender...). It also sums
// the trace's ranges (GC mark assist, stop-the-world).
//
//	go run . -func 'heartbeatRelayServer).Relay' -n 5 leader.trace
//	go run . -func HandleStreams -by Runnable -n 4 leader.trace
//
// Session 20 of issue 13 found with it that the leader's heartbeat relays
// waited on the store's lock held by the apply loop's broadcast
// (BENCHMARKS.md). Its own module, so the project's go.mod does not carry
// golang.org/x/exp.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

// gInfo is what the trace says of one goroutine.
type gInfo struct {
	id        trace.GoID
	match     bool
	created   trace.Time
	ended     trace.Time
	state     trace.GoState
	since     trace.Time
	in        map[string]time.Duration // state (and wait reason + top frame) -> time
	firstSeen trace.Time
	last      string
	wokeBy    []string
}

// frames names the first n frames of s outside the runtime (and, unless
// withSync, outside package sync), with their lines if withLines.
func frames(s trace.Stack, n int, withSync, withLines bool) string {
	var out []string
	for f := range s.Frames() {
		if strings.HasPrefix(f.Func, "runtime.") || strings.HasPrefix(f.Func, "internal/") ||
			!withSync && strings.HasPrefix(f.Func, "sync.") {
			continue
		}
		if withLines {
			out = append(out, fmt.Sprintf("%s:%d", f.Func, f.Line))
		} else {
			out = append(out, f.Func)
		}
		if len(out) == n {
			break
		}
	}
	return strings.Join(out, " < ")
}

func has(s trace.Stack, sub string) bool {
	for f := range s.Frames() {
		if strings.Contains(f.Func, sub) {
			return true
		}
	}
	return false
}

func main() {
	fn := flag.String("func", "heartbeatRelayServer).Relay", "substring of a function")
	n := flag.Int("n", 15, "goroutines to list")
	by := flag.String("by", "", "sort by the time in this state (Running, Runnable...) instead of life")
	flag.Parse()
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		panic(err)
	}
	r, err := trace.NewReader(f)
	if err != nil {
		panic(err)
	}
	gs := map[trace.GoID]*gInfo{}
	var first, last trace.Time
	var gcTime time.Duration
	rangeStart := map[string]trace.Time{}
	ranges := map[string]time.Duration{}
	var gcStart trace.Time
	for {
		ev, err := r.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		if first == 0 {
			first = ev.Time()
		}
		last = ev.Time()
		switch ev.Kind() {
		case trace.EventRangeBegin:
			rangeStart[ev.Range().Name+" "+ev.Range().Scope.String()] = ev.Time()
			if strings.Contains(ev.Range().Name, "stop-the-world") {
				gcStart = ev.Time()
			}
		case trace.EventRangeEnd:
			k := ev.Range().Name + " " + ev.Range().Scope.String()
			if t0, ok := rangeStart[k]; ok {
				ranges[ev.Range().Name] += ev.Time().Sub(t0)
				delete(rangeStart, k)
			}
			if strings.Contains(ev.Range().Name, "stop-the-world") && gcStart != 0 {
				gcTime += ev.Time().Sub(gcStart)
				gcStart = 0
			}
		case trace.EventStateTransition:
			st := ev.StateTransition()
			if st.Resource.Kind != trace.ResourceGoroutine {
				continue
			}
			id := st.Resource.Goroutine()
			from, to := st.Goroutine()
			g := gs[id]
			if g == nil {
				g = &gInfo{id: id, in: map[string]time.Duration{}, since: ev.Time(), state: from, firstSeen: ev.Time()}
				gs[id] = g
			}
			if from == trace.GoNotExist {
				g.created = ev.Time()
			}
			if has(st.Stack, *fn) || has(ev.Stack(), *fn) && ev.Goroutine() == id {
				g.match = true
			}
			key := g.state.String()
			if g.state == trace.GoWaiting {
				key += " " + g.last
			}
			g.in[key] += ev.Time().Sub(g.since)
			if from == trace.GoWaiting && to == trace.GoRunnable {
				g.wokeBy = append(g.wokeBy, fmt.Sprintf("%v after %v by g%d: %s", g.last, ev.Time().Sub(g.since).Round(time.Millisecond), ev.Goroutine(), frames(ev.Stack(), 4, true, true)))
			}
			g.state, g.since = to, ev.Time()
			if to == trace.GoWaiting {
				g.last = st.Reason + " @ " + frames(st.Stack, 2, false, false)
			}
			if to == trace.GoNotExist {
				g.ended = ev.Time()
			}
		}
	}
	fmt.Printf("trace %v long; stop-the-world %v\n", last.Sub(first), gcTime)
	printMap("ranges", ranges)
	var ms []*gInfo
	agg := map[string]time.Duration{}
	for _, g := range gs {
		if g.match {
			ms = append(ms, g)
			for k, v := range g.in {
				agg[k] += v
			}
		}
	}
	sort.Slice(ms, func(i, j int) bool {
		if *by != "" {
			return ms[i].in[*by] > ms[j].in[*by]
		}
		return life(ms[i], last) > life(ms[j], last)
	})
	fmt.Printf("%d goroutines match %q\n", len(ms), *fn)
	printMap("all of them", agg)
	for i, g := range ms {
		if i == *n {
			break
		}
		c := "before the trace"
		if g.created != 0 {
			c = fmt.Sprintf("%.3fs", float64(g.created.Sub(first))/1e9)
		}
		fmt.Printf("g%d created %s life %v (abs %d..%d)\n", g.id, c, life(g, last), g.created, g.ended)
		printMap("", g.in)
		for _, w := range g.wokeBy {
			if !strings.Contains(w, "after 0s") {
				fmt.Println("      woken:", w)
			}
		}
	}
}

func life(g *gInfo, last trace.Time) time.Duration {
	s := g.created
	if s == 0 {
		s = g.firstSeen
	}
	e := g.ended
	if e == 0 {
		e = last
	}
	return e.Sub(s)
}

func printMap(title string, m map[string]time.Duration) {
	if title != "" {
		fmt.Println(" ", title)
	}
	type kv struct {
		k string
		v time.Duration
	}
	var l []kv
	for k, v := range m {
		l = append(l, kv{k, v})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].v > l[j].v })
	for i, e := range l {
		if i == 6 {
			break
		}
		fmt.Printf("    %-12v %s\n", e.v.Round(time.Millisecond), e.k)
	}
}
