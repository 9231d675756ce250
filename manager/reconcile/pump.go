package reconcile

import "github.com/shoal-project/shoal/raftstore"

// pumpBatch caps the events one function from Outcome.Events feeds to the
// handler: enough to make the hand-over between goroutines cheap next to
// the events, few enough that a pass waiting for its writes is not kept
// from them long.
const pumpBatch = 256

// pump carries the watch's events to a pass that asks for them
// (Outcome.Events). Its goroutine, started on the first ask, reads the
// watch and hands over batches through an unbuffered channel; the events
// themselves are handled by whoever receives, on the pass's goroutine. A
// batch read but not taken when the pass ends is handled by stop, on the
// driver's goroutine, in order: no event is lost or handled twice.
type pump struct {
	d *Driver
	w *raftstore.Watcher

	ch   chan func()
	quit chan struct{}
	done chan struct{}
	held []raftstore.Event // written by the goroutine before done closes
}

// start starts the pump's goroutine once and returns its channel.
func (p *pump) start() <-chan func() {
	if p.ch != nil {
		return p.ch
	}
	p.ch, p.quit, p.done = make(chan func()), make(chan struct{}), make(chan struct{})
	go p.run()
	return p.ch
}

func (p *pump) run() {
	defer close(p.done)
	for {
		var batch []raftstore.Event
		select {
		case ev, ok := <-p.w.C:
			if !ok {
				return // cut off: the driver sees it once the pass ends
			}
			batch = append(batch, ev)
		case <-p.quit:
			return
		}
	fill:
		for len(batch) < pumpBatch {
			select {
			case ev, ok := <-p.w.C:
				if !ok {
					break fill
				}
				batch = append(batch, ev)
			default:
				break fill
			}
		}
		select {
		case p.ch <- func() {
			now := p.d.cfg.Clock.Now()
			for _, ev := range batch {
				p.d.handle(ev, now)
			}
		}:
		case <-p.quit:
			p.held = batch
			return
		}
	}
}

// stop ends the goroutine, if it was started, and handles what it held.
func (p *pump) stop() {
	if p.ch == nil {
		return
	}
	close(p.quit)
	<-p.done
	now := p.d.cfg.Clock.Now()
	for _, ev := range p.held {
		p.d.handle(ev, now)
	}
	p.held = nil
}
