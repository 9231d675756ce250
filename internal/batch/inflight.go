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
}

// NewInFlight returns an InFlight of at most limit writes (at least 1).
func NewInFlight[R any](limit int, settle func(R)) *InFlight[R] {
	return &InFlight[R]{results: make(chan R, max(limit, 1)), settle: settle}
}

// Go starts write, first settling one finished write when all slots are
// taken.
func (p *InFlight[R]) Go(write func() R) {
	if p.running == cap(p.results) {
		p.settle(<-p.results)
		p.running--
	}
	p.running++
	go func() { p.results <- write() }()
}

// Wait settles every write still running.
func (p *InFlight[R]) Wait() {
	for ; p.running > 0; p.running-- {
		p.settle(<-p.results)
	}
}
