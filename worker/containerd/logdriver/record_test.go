package logdriver

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 80, time.FixedZone("X", 3600))
	for _, r := range []Record{
		{Time: at, Stream: Stdout, Line: []byte("hello world")},
		{Time: at, Stream: Stderr, Partial: true, Line: []byte(strings.Repeat("x", MaxLine))},
		{Time: at, Stream: Stdout, Line: []byte{}},
		{Time: at, Stream: Stderr, Partial: true, Line: []byte("\x00\xff\r\t  trailing ")},
		{Time: time.Unix(0, 0), Stream: Stdout, Line: []byte("epoch")},
	} {
		b := AppendRecord([]byte("prefix"), r)
		if !bytes.HasPrefix(b, []byte("prefix")) || b[len(b)-1] != '\n' || bytes.Count(b, []byte{'\n'}) != 1 {
			t.Fatalf("AppendRecord = %q", b)
		}
		enc := b[len("prefix") : len(b)-1]
		got, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(%q): %v", enc, err)
		}
		if !got.Time.Equal(r.Time) || got.Stream != r.Stream || got.Partial != r.Partial || !bytes.Equal(got.Line, r.Line) {
			t.Errorf("round trip of %+v = %+v", r, got)
		}
		if len(b)-len("prefix") > MaxRecord {
			t.Errorf("record of %d bytes exceeds MaxRecord", len(b)-len("prefix"))
		}
	}
	enc := AppendRecord(nil, Record{Time: at, Stream: Stderr, Partial: true, Line: []byte("abc")})
	if want := "2025-03-04T04:06:07.000000080Z stderr P abc\n"; string(enc) != want {
		t.Errorf("encoding = %q, want %q", enc, want)
	}
}

func TestDecode(t *testing.T) {
	ok := map[string]Record{
		"2016-10-06T00:17:09.669794202Z stdout F log content 1": {Stream: Stdout, Line: []byte("log content 1")},
		"2016-10-06T00:17:09.669794203Z stderr P part":          {Stream: Stderr, Partial: true, Line: []byte("part")},
		"2016-10-06T00:17:09Z stdout F ":                        {Stream: Stdout, Line: []byte{}},
		"2016-10-06T00:17:09+02:00 stdout F":                    {Stream: Stdout, Line: []byte{}},
		"2016-10-06T00:17:09.1Z stdout F  two spaces":           {Stream: Stdout, Line: []byte(" two spaces")},
	}
	for in, want := range ok {
		got, err := Decode([]byte(in))
		if err != nil || got.Stream != want.Stream || got.Partial != want.Partial || !bytes.Equal(got.Line, want.Line) {
			t.Errorf("Decode(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	if r, _ := Decode([]byte("2016-10-06T02:17:09+02:00 stdout F x")); !r.Time.Equal(time.Date(2016, 10, 6, 0, 17, 9, 0, time.UTC)) {
		t.Errorf("time zone: %v", r.Time)
	}
	for _, in := range []string{
		"",
		"plain old log line",
		"2016-10-06T00:17:09Z",
		"2016-10-06T00:17:09Z stdout",
		"2016-10-06T00:17:09Z stdout ",
		"2016-10-06T00:17:09Z stdin F x",
		"2016-10-06T00:17:09Z stdout X x",
		"2016-10-06T00:17:09Z stdout Fx",
		"2016-10-06 stdout F x",
		"2016-13-06T00:17:09Z stdout F x",
		"0000-01-01T00:00:00+01:00 stdout F x", // a year before 0 in UTC
		"2016-10-06T00:17:09Z stdout F a\nb",
		"2016-10-06T00:17:09Z stdout F " + strings.Repeat("x", MaxLine+1),
	} {
		if _, err := Decode([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%.60q) = %v, want ErrMalformed", in, err)
		}
	}
}

func TestRecordData(t *testing.T) {
	if d := (Record{Line: []byte("a")}).Data(); string(d) != "a\n" {
		t.Errorf("full: %q", d)
	}
	if d := (Record{Line: []byte("a"), Partial: true}).Data(); string(d) != "a" {
		t.Errorf("partial: %q", d)
	}
	if Stdout.String() != "stdout" || Stderr.String() != "stderr" || Stream(9).String() != "stream(9)" {
		t.Error("Stream.String")
	}
}
