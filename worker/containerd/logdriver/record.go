package logdriver

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// MaxLine is the most bytes of a line one record carries; a longer line is
// split into several records, all but the last marked partial, as Docker and
// the kubelet split at 16 KiB.
const MaxLine = 16 << 10

// MaxRecord bounds the length of an encoded record, newline included: a
// longer line in a log file is no record (AppendRecord's prefix takes 40
// bytes; other writers' time zones and digits of a second get some slack).
const MaxRecord = 64 + MaxLine

// timeLayout is RFC 3339 with nanoseconds in UTC, fixed width so that
// records line up and sort as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// Stream is the container's output a line came from.
type Stream uint8

const (
	Stdout Stream = iota + 1
	Stderr
)

func (s Stream) String() string {
	switch s {
	case Stdout:
		return "stdout"
	case Stderr:
		return "stderr"
	}
	return fmt.Sprintf("stream(%d)", uint8(s))
}

// Record is one line, or one piece of a long line, of a container's output.
type Record struct {
	// Time is when the driver read the line from the container's pipe.
	Time   time.Time
	Stream Stream
	// Partial marks a record that does not end its line: the next record
	// of the same stream continues it, or the stream ended without a
	// newline.
	Partial bool
	// Line is the data without its newline; it never holds '\n'.
	Line []byte
}

// Data returns the line as the container wrote it: Line with its newline
// unless the record is partial.
func (r Record) Data() []byte {
	d := make([]byte, 0, len(r.Line)+1)
	d = append(d, r.Line...)
	if !r.Partial {
		d = append(d, '\n')
	}
	return d
}

// AppendRecord appends r to dst in the CRI log format, the one the kubelet
// and containerd's CRI plugin write:
//
//	<time RFC 3339, ns, UTC> SP stdout|stderr SP F|P SP <line> LF
//
// F is a full line (or a long line's last piece), P a partial one. The line
// is raw bytes: a record ends at the first newline, and lines hold none. r's
// Stream must be Stdout or Stderr, and its Line must not hold '\n' (the
// driver's splitter guarantees both).
func AppendRecord(dst []byte, r Record) []byte {
	dst = appendPrefix(dst, r.Time, r.Stream, r.Partial)
	dst = append(dst, r.Line...)
	return append(dst, '\n')
}

// appendPrefix appends what precedes a record's line: time, stream and tag.
func appendPrefix(dst []byte, t time.Time, s Stream, partial bool) []byte {
	dst = t.UTC().AppendFormat(dst, timeLayout)
	if s == Stderr {
		dst = append(dst, " stderr "...)
	} else {
		dst = append(dst, " stdout "...)
	}
	if partial {
		return append(dst, 'P', ' ')
	}
	return append(dst, 'F', ' ')
}

// ErrMalformed is returned by Decode for a line that is not a record.
var ErrMalformed = errors.New("malformed log record")

// Decode parses one record, given without its newline. The returned
// Line aliases line. Decode accepts what AppendRecord writes and the CRI
// format generally: any RFC 3339 time (re-encoded in UTC), the tags F and
// P, and an empty line with or without the space before it. A line longer
// than MaxRecord, or holding a newline, is malformed.
func Decode(line []byte) (Record, error) {
	var r Record
	if len(line) >= MaxRecord || bytes.IndexByte(line, '\n') >= 0 {
		return r, ErrMalformed
	}
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok || len(ts) > 48 {
		return r, ErrMalformed
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return r, ErrMalformed
	}
	// Only times AppendRecord can write back: four-digit years in UTC.
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return r, ErrMalformed
	}
	r.Time = t
	switch {
	case bytes.HasPrefix(rest, []byte("stdout ")):
		r.Stream = Stdout
	case bytes.HasPrefix(rest, []byte("stderr ")):
		r.Stream = Stderr
	default:
		return r, ErrMalformed
	}
	rest = rest[len("stdout "):]
	if len(rest) == 0 {
		return r, ErrMalformed
	}
	switch rest[0] {
	case 'F':
	case 'P':
		r.Partial = true
	default:
		return r, ErrMalformed
	}
	rest = rest[1:]
	if len(rest) > 0 {
		if rest[0] != ' ' {
			return r, ErrMalformed
		}
		rest = rest[1:]
	}
	if len(rest) > MaxLine {
		return r, ErrMalformed
	}
	r.Line = rest
	return r, nil
}
