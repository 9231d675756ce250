package dockerapi

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"google.golang.org/protobuf/types/known/timestamppb"

	api "github.com/shoal-project/shoal/proto"
)

// TestLogFraming: docker's own demultiplexer reads what writeLogMessage
// writes, line by line, with the timestamp and details prefixes in
// dockerd's order.
func TestLogFraming(t *testing.T) {
	ts := time.Date(2026, 12, 2, 20, 0, 0, 5, time.UTC)
	lc := &api.LogContext{ServiceId: "svc1", NodeId: "node1", TaskId: "task1"}
	msgs := []*api.LogMessage{
		{Context: lc, Timestamp: timestamppb.New(ts), Stream: api.LogStream_LOG_STREAM_STDOUT, Data: []byte("one\ntwo")},
		{Context: lc, Timestamp: timestamppb.New(ts), Stream: api.LogStream_LOG_STREAM_STDERR, Data: []byte("oops\n")},
	}
	o := logOptions{stdout: true, stderr: true, timestamps: true, details: true}
	var buf bytes.Buffer
	for _, m := range msgs {
		if err := writeLogMessage(&buf, m, o, false); err != nil {
			t.Fatal(err)
		}
	}
	var out, errOut bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errOut, &buf); err != nil {
		t.Fatal(err)
	}
	prefix := "2026-12-02T20:00:00.000000005Z com.docker.swarm.node.id=node1,com.docker.swarm.service.id=svc1,com.docker.swarm.task.id=task1 "
	if want := prefix + "one\n" + prefix + "two\n"; out.String() != want {
		t.Errorf("stdout:\n%q\nwant\n%q", out.String(), want)
	}
	if want := prefix + "oops\n"; errOut.String() != want {
		t.Errorf("stderr:\n%q\nwant\n%q", errOut.String(), want)
	}

	// A TTY service: raw bytes; stderr left out when not asked for.
	buf.Reset()
	o = logOptions{stdout: true}
	for _, m := range msgs {
		if err := writeLogMessage(&buf, m, o, true); err != nil {
			t.Fatal(err)
		}
	}
	if buf.String() != "one\ntwo\n" {
		t.Errorf("raw stream: %q", buf.String())
	}
}

func TestLogOptions(t *testing.T) {
	for q, want := range map[string]string{
		"":                         "Bad parameters: you must choose at least one stream",
		"stdout=1&tail=x":          `invalid tail "x"`,
		"stdout=1&tail=-2":         `invalid tail "-2"`,
		"stderr=1&since=yesterday": "since",
	} {
		_, err := parseLogOptions(httptest.NewRequest("GET", "/services/x/logs?"+q, nil))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", q, err, want)
		}
	}
	o, err := parseLogOptions(httptest.NewRequest("GET", "/services/x/logs?stdout=1&tail=3&follow=1&since=1796191401.5", nil))
	if err != nil || o.sub.GetTail() != 3 || !o.sub.GetFollow() || o.sub.GetSince().AsTime().Unix() != 1796191401 {
		t.Errorf("parsed %+v, %v", o.sub, err)
	}
	o, err = parseLogOptions(httptest.NewRequest("GET", "/services/x/logs?stdout=1&tail=all", nil))
	if err != nil || o.sub.GetTail() != -1 {
		t.Errorf("tail=all: %+v, %v", o.sub, err)
	}
}
