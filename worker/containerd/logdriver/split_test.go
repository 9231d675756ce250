package logdriver

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// recBuf is a recordWriter that keeps records in a buffer.
type recBuf struct{ b bytes.Buffer }

func (w *recBuf) writeRecord(t time.Time, s Stream, partial bool, a, b []byte) {
	line := append(append([]byte(nil), a...), b...)
	w.b.Write(AppendRecord(nil, Record{Time: t, Stream: s, Partial: partial, Line: line}))
}

func decodeAll(t *testing.T, b []byte) []Record {
	t.Helper()
	var out []Record
	for _, l := range bytes.SplitAfter(b, []byte{'\n'}) {
		if len(l) == 0 {
			continue
		}
		if l[len(l)-1] != '\n' {
			t.Fatalf("unterminated record %q", l)
		}
		r, err := Decode(l[:len(l)-1])
		if err != nil {
			t.Fatalf("Decode(%q): %v", l, err)
		}
		out = append(out, r)
	}
	return out
}

func TestSplitterLines(t *testing.T) {
	var w recBuf
	p := &splitter{w: &w}
	at := time.Unix(1000, 0)
	long := strings.Repeat("a", MaxLine) + strings.Repeat("b", MaxLine) + "cc"
	reads := []string{"one\ntw", "o\n\nthr", "ee", "\n" + long[:100], long[100:] + "\n", strings.Repeat("z", MaxLine), "\nno newline"}
	for i, r := range reads {
		p.feed(Stdout, []byte(r), at.Add(time.Duration(i)*time.Millisecond))
	}
	p.flush(Stdout, at.Add(time.Second))
	rs := decodeAll(t, w.b.Bytes())
	var got []string
	for _, r := range rs {
		s := string(r.Line)
		if len(s) > 10 {
			s = s[:1] + "*" + string(rune('0'+len(s)/MaxLine))
		}
		if r.Partial {
			s += "+"
		}
		got = append(got, s)
	}
	// a*1 is MaxLine a's, b*1 MaxLine b's, z*1 a line of exactly MaxLine.
	if want := "one|two||three|a*1+|b*1+|cc|z*1|no newline+"; strings.Join(got, "|") != want {
		t.Errorf("records %q, want %q", strings.Join(got, "|"), want)
	}
	// A record has the time of the read that completed it.
	if !rs[1].Time.Equal(at.Add(time.Millisecond)) || !rs[3].Time.Equal(at.Add(3*time.Millisecond)) {
		t.Errorf("times %v %v", rs[1].Time, rs[3].Time)
	}
}

func TestSplitterStreamsApart(t *testing.T) {
	var w recBuf
	p := &splitter{w: &w}
	at := time.Unix(1000, 0)
	p.feed(Stdout, []byte("out-a"), at)
	p.feed(Stderr, []byte("err-a"), at)
	p.feed(Stderr, []byte("\n"), at)
	p.feed(Stdout, []byte("\n"), at)
	var got []string
	for _, r := range decodeAll(t, w.b.Bytes()) {
		got = append(got, r.Stream.String()+":"+string(r.Line))
	}
	if strings.Join(got, " ") != "stderr:err-a stdout:out-a" {
		t.Errorf("records %q", got)
	}
}

func TestSplitterPartialFlush(t *testing.T) {
	var w recBuf
	p := &splitter{w: &w}
	at := time.Unix(1000, 0)
	p.feed(Stdout, []byte("name? "), at)
	if next := p.flushDue(at.Add(PartialFlush-time.Millisecond), [2]bool{}); !next.Equal(at.Add(PartialFlush)) || w.b.Len() != 0 {
		t.Fatalf("flushed early, or next due %v", next)
	}
	// More data before it is due: due again PartialFlush after it.
	p.feed(Stdout, []byte("more "), at.Add(400*time.Millisecond))
	if p.flushDue(at.Add(PartialFlush), [2]bool{}); w.b.Len() != 0 {
		t.Fatal("flushed a line that got data 100ms ago")
	}
	// Due, but its stream had data this round: kept.
	if p.flushDue(at.Add(time.Hour), [2]bool{true, false}); w.b.Len() != 0 {
		t.Fatal("flushed the line of a stream that is being read")
	}
	if next := p.flushDue(at.Add(900*time.Millisecond), [2]bool{}); !next.IsZero() {
		t.Errorf("next due %v after the flush", next)
	}
	p.feed(Stdout, []byte("joe\n"), at.Add(time.Second))
	var got []string
	for _, r := range decodeAll(t, w.b.Bytes()) {
		got = append(got, string(r.Data()))
	}
	if strings.Join(got, "|") != "name? more |joe\n" {
		t.Errorf("records %q", got)
	}
}
