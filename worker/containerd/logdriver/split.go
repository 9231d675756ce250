package logdriver

import (
	"bytes"
	"time"
)

// PartialFlush is how long an unfinished line waits for more data before
// it is written as a partial record.
const PartialFlush = 500 * time.Millisecond

// recordWriter takes one record: its time, stream, whether it is partial,
// and its line as two pieces (a+b, either may be empty) so the splitter
// never copies a line to join it.
type recordWriter interface {
	writeRecord(t time.Time, s Stream, partial bool, a, b []byte)
}

// splitter turns the two streams' output into records. It holds at most
// one unfinished line per stream (at most MaxLine bytes each). It is used
// by one goroutine.
type splitter struct {
	w     recordWriter
	lines [2]pending // by Stream-1
}

// pending is a stream's unfinished line and when it is due to be written
// as it is.
type pending struct {
	line []byte
	due  time.Time
}

// feed splits one read of stream s, made at t, into records. An unfinished
// line stays for the next read; it is due PartialFlush after t.
func (p *splitter) feed(s Stream, data []byte, t time.Time) {
	l := &p.lines[s-1]
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		piece := data
		if i >= 0 {
			piece, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		// A line longer than MaxLine goes out in MaxLine pieces.
		for len(l.line)+len(piece) > MaxLine {
			take := MaxLine - len(l.line)
			p.w.writeRecord(t, s, true, l.line, piece[:take])
			l.line, piece = l.line[:0], piece[take:]
		}
		if i >= 0 {
			p.w.writeRecord(t, s, false, l.line, piece)
			l.line = l.line[:0]
			continue
		}
		if l.line == nil {
			l.line = make([]byte, 0, MaxLine)
		}
		l.line = append(l.line, piece...)
	}
	if len(l.line) > 0 {
		l.due = t.Add(PartialFlush)
	}
}

// flush writes stream s's unfinished line, if any, as a partial record.
func (p *splitter) flush(s Stream, t time.Time) {
	l := &p.lines[s-1]
	if len(l.line) == 0 {
		return
	}
	p.w.writeRecord(t, s, true, l.line, nil)
	l.line = l.line[:0]
}

// flushDue writes the unfinished lines due by now and returns when the
// next one is due (zero when none waits). A stream marked busy had data
// this round: its line is not written yet, whatever the clock says (the
// driver may have been held up since it read, while the line's end was
// already waiting in the pipe).
func (p *splitter) flushDue(now time.Time, busy [2]bool) time.Time {
	var next time.Time
	for i := range p.lines {
		l := &p.lines[i]
		if len(l.line) == 0 {
			continue
		}
		if !busy[i] && !l.due.After(now) {
			p.flush(Stream(i+1), now)
			continue
		}
		if next.IsZero() || l.due.Before(next) {
			next = l.due
		}
	}
	return next
}
