package logdriver

import (
	"bytes"
	"testing"
)

// FuzzDecode: log files are read back from disk, where anything may have
// been left (a crash mid-write, a full disk, another writer). Whatever
// Decode accepts must be a record AppendRecord writes back as the same.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("2016-10-06T00:17:09.669794202Z stdout F log content 1"))
	f.Add([]byte("2016-10-06T00:17:09+02:00 stderr P"))
	f.Add([]byte("plain line"))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := Decode(line)
		if err != nil {
			return
		}
		if r.Stream != Stdout && r.Stream != Stderr {
			t.Fatalf("stream %v", r.Stream)
		}
		if bytes.IndexByte(r.Line, '\n') >= 0 || len(r.Line) > MaxLine {
			t.Fatalf("line of %d bytes with a newline or too long", len(r.Line))
		}
		enc := AppendRecord(nil, r)
		if len(enc) > MaxRecord || enc[len(enc)-1] != '\n' || bytes.IndexByte(enc[:len(enc)-1], '\n') >= 0 {
			t.Fatalf("re-encoded as %q", enc)
		}
		r2, err := Decode(enc[:len(enc)-1])
		if err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", enc, err)
		}
		if !r2.Time.Equal(r.Time) || r2.Stream != r.Stream || r2.Partial != r.Partial || !bytes.Equal(r2.Line, r.Line) {
			t.Fatalf("round trip %+v -> %+v", r, r2)
		}
	})
}
