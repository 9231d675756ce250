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
// with ANSI cursor moves, as Docker's jsonmessage does; otherwise a line is
// printed each time an ID's text changes, without bars. Either way a line is
// written only when its text changes.
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
		if strings.TrimSpace(action) == "" {
			return
		}
		text := strings.TrimRight(id+": "+action, " ")
		if d.last[id] == text {
			return
		}
		d.last[id] = text
		fmt.Fprintln(d.out, text)
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

// Message prints a line that belongs to no ID. On a terminal it also ends
// the in-place block: later IDs start new lines below it.
func (d *Display) Message(msg string) {
	if d.tty {
		d.ids = map[string]int{}
		d.last = map[string]string{}
	}
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
