package batch

// InFlight runs writes (each waiting for its own raft commit) on goroutines
// of their own, at most a limit at once, and hands each result to settle on the
// caller's goroutine, in the order they finish: a control loop keeps its
// state single-threaded while several transactions are in flight. Wait must
// be called before the caller returns; every write started has then been
// settled and no goroutine is left.
type InFlight[R any] struct {
	results chan R
	running int
	settle  func(R)
	serve   <-chan func() // nil: none
}

// Serve makes Go and Wait run the functions received on calls while they
// wait for a write to finish (on the caller's goroutine, like settle): a
// loop whose state others reach through such calls keeps answering them
// while its writes are in flight.
func (p *InFlight[R]) Serve(calls <-chan func()) *InFlight[R] {
	p.serve = calls
	return p
}

// next waits for a finished write, serving calls meanwhile.
func (p *InFlight[R]) next() R {
	for {
		select {
		case r := <-p.results:
			return r
		case f := <-p.serve:
			f()
		}
	}
}

// NewInFlight returns an InFlight of at most limit writes (at least 1).
func NewInFlight[R any](limit int, settle func(R)) *InFlight[R] {
	return &InFlight[R]{results: make(chan R, max(limit, 1)), settle: settle}
}

// Go starts write, first settling one finished write when all slots are
// taken.
func (p *InFlight[R]) Go(write func() R) {
	if p.running == cap(p.results) {
		p.settle(p.next())
		p.running--
	}
	p.running++
	go func() { p.results <- write() }()
}

// Finished is where finished writes wait to be settled: a caller that
// waits on other things too selects on it and hands what it receives to
// Settle (on its own goroutine, like Go and Wait).
func (p *InFlight[R]) Finished() <-chan R { return p.results }

// Settle settles a write received from Finished.
func (p *InFlight[R]) Settle(r R) {
	p.running--
	p.settle(r)
}

// Wait settles every write still running.
func (p *InFlight[R]) Wait() {
	for ; p.running > 0; p.running-- {
		p.settle(p.next())
	}
}
