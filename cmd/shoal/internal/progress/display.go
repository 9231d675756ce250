package progress

import (
	"fmt"
	"io"
	"strings"
)

// barWidth is the width of jsonmessage's progress bar.
const barWidth = 50

// minBarTermWidth: like Docker, bars are drawn only on terminals wider than
// this (when the width is known).
const minBarTermWidth = 110

// Display writes progress lines keyed by an ID ("overall progress", "1/3",
// "verify"). On a terminal each ID keeps its line and is redrawn in place
// with ANSI cursor moves, as Docker's jsonmessage does, and a line is
// redrawn only when its text changes.
//
// Without a terminal the lines are docker 28.2.2's (its CLI with no
// terminal at all, as in scripts and CI): a line that would carry a bar
// (a task's state, a job's progress) is not written; the others are
// written as "ID: text", each time the text of their ID changes. Docker
// writes them again on every poll; shoal writes what docker's output reads
// once repeated lines are taken as one, including the repeat of a line
// after the block of blank per-task lines that opens the display.
type Display struct {
	out   io.Writer
	tty   bool
	width int
	ids   map[string]int
	last  map[string]string
}

// NewDisplay returns a display on out. width is the terminal width, 0 when
// unknown.
func NewDisplay(out io.Writer, tty bool, width int) *Display {
	return &Display{out: out, tty: tty, width: width, ids: map[string]int{}, last: map[string]string{}}
}

// Update sets the line of id to "id: action", with a bar when total > 0.
func (d *Display) Update(id, action string, current, total int64) {
	if !d.tty {
		d.plain(id, action, total)
		return
	}
	text := fmt.Sprintf("%s: %s %s", id, action, d.bar(current, total))
	line, ok := d.ids[id]
	if !ok {
		line = len(d.ids)
		d.ids[id] = line
		fmt.Fprint(d.out, "\n")
	} else if d.last[id] == text {
		return // the line already shows this
	}
	d.last[id] = text
	diff := len(d.ids) - line
	fmt.Fprintf(d.out, "\x1b[%dA\x1b[2K\r%s\r\x1b[%dB", diff, text, diff)
}

// plain writes a line without a terminal (see Display).
func (d *Display) plain(id, action string, total int64) {
	if total > 0 {
		return
	}
	text := id + ": " + action
	if d.last[id] == text {
		return
	}
	if strings.TrimSpace(action) == "" {
		// Docker writes every line again on its next poll: the lines
		// before this blank one show again after it.
		clear(d.last)
	}
	d.last[id] = text
	fmt.Fprintln(d.out, text)
}

// Message prints a line that belongs to no ID. On a terminal it also ends
// the in-place block: later IDs start new lines below it.
func (d *Display) Message(msg string) {
	if d.tty {
		d.ids = map[string]int{}
	}
	d.last = map[string]string{}
	fmt.Fprintln(d.out, msg)
}

func (d *Display) bar(current, total int64) string {
	if total <= 0 || (d.width > 0 && d.width <= minBarTermWidth) {
		return ""
	}
	pct := int(float64(current)/float64(total)*100) / 2
	pct = max(0, min(pct, barWidth))
	return "[" + strings.Repeat("=", pct) + ">" + strings.Repeat(" ", barWidth-pct) + "] "
}
