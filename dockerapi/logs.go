package dockerapi

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/dockerapi/events"
	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// rfc3339NanoFixed is docker's log timestamp layout (fixed width).
const rfc3339NanoFixed = "2006-01-02T15:04:05.000000000Z07:00"

// logOptions are the query parameters of GET /services/{id}/logs and
// /tasks/{id}/logs.
type logOptions struct {
	stdout, stderr, timestamps, details bool
	sub                                 *api.LogSubscriptionOptions
}

func parseLogOptions(r *http.Request) (logOptions, error) {
	q := r.URL.Query()
	o := logOptions{
		stdout: boolValue(r, "stdout"), stderr: boolValue(r, "stderr"),
		timestamps: boolValue(r, "timestamps"), details: boolValue(r, "details"),
		sub: &api.LogSubscriptionOptions{Follow: boolValue(r, "follow"), Tail: -1},
	}
	if !o.stdout && !o.stderr {
		return o, badRequest("Bad parameters: you must choose at least one stream")
	}
	switch tail := strings.TrimSpace(q.Get("tail")); tail {
	case "", "all":
	default:
		n, err := strconv.ParseInt(tail, 10, 64)
		if err != nil || n < 0 {
			return o, badRequest("invalid tail %q: give a number of lines or \"all\"", tail)
		}
		o.sub.Tail = n
	}
	if v := q.Get("since"); v != "" {
		t, err := events.ParseTime("since", v, time.Now())
		if err != nil {
			return o, badRequest("%v", err)
		}
		if !t.IsZero() {
			o.sub.Since = timestamppb.New(t)
		}
	}
	return o, nil
}

// serviceLogs answers GET /services/{id}/logs.
func (s *Server) serviceLogs(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	o, err := parseLogOptions(r)
	if err != nil {
		return err
	}
	svc, err := s.services().lookup(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	tty := svc.GetSpec().GetTask().GetContainer().GetTty()
	return s.streamLogs(ctx, w, &api.LogSelector{ServiceIds: []string{svc.GetId()}}, o, tty)
}

// taskLogs answers GET /tasks/{id}/logs.
func (s *Server) taskLogs(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	o, err := parseLogOptions(r)
	if err != nil {
		return err
	}
	t, err := s.tasks().lookup(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	tty := t.GetSpec().GetContainer().GetTty()
	return s.streamLogs(ctx, w, &api.LogSelector{TaskIds: []string{t.GetId()}}, o, tty)
}

// streamLogs subscribes to the logs and writes them as dockerd does: a
// multiplexed stream (8-byte frame headers: stream, 0, 0, 0, big-endian
// length) or, for a TTY service, the raw bytes. Each line may carry the
// timestamp and (details) the swarm context attributes.
func (s *Server) streamLogs(ctx context.Context, w http.ResponseWriter, sel *api.LogSelector, o logOptions, tty bool) error {
	if s.logs == nil {
		return errdefs.Unavailable("logs are not available: this gateway has no connection to the node's log service")
	}
	stream, err := s.logs.SubscribeLogs(ctx, &api.SubscribeLogsRequest{Selector: sel, Options: o.sub})
	if err != nil {
		return errdefs.FromGRPC(err)
	}
	// Without follow, the first answer tells whether the subscription
	// works before the 200 goes out, so that errors still get docker's JSON
	// body. With follow, the headers go out at once: a quiet service must
	// not leave the client waiting for them.
	var first *api.SubscribeLogsMessage
	if !o.sub.GetFollow() {
		if first, err = stream.Recv(); err != nil && !errors.Is(err, io.EOF) {
			return errdefs.FromGRPC(err)
		}
	}
	if tty {
		w.Header().Set("Content-Type", "application/vnd.docker.raw-stream")
	} else {
		w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
	}
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	flush()
	msg := first
	if o.sub.GetFollow() {
		msg, err = stream.Recv()
	}
	for err == nil {
		for _, m := range msg.GetMessages() {
			if werr := writeLogMessage(w, m, o, tty); werr != nil {
				return nil // the client went away
			}
		}
		flush()
		msg, err = stream.Recv()
	}
	if !errors.Is(err, io.EOF) && ctx.Err() == nil {
		s.log.Debug("docker API log stream ended", "err", err)
	}
	return nil
}

// writeLogMessage writes one log message, line by line.
func writeLogMessage(w io.Writer, m *api.LogMessage, o logOptions, tty bool) error {
	isErr := m.GetStream() == api.LogStream_LOG_STREAM_STDERR
	if isErr && !o.stderr || !isErr && !o.stdout {
		return nil
	}
	var prefix []byte
	if o.timestamps && m.GetTimestamp() != nil {
		prefix = append(prefix, m.GetTimestamp().AsTime().UTC().Format(rfc3339NanoFixed)...)
		prefix = append(prefix, ' ')
	}
	if o.details {
		c := m.GetContext()
		prefix = append(prefix, "com.docker.swarm.node.id="+url.QueryEscape(c.GetNodeId())+
			",com.docker.swarm.service.id="+url.QueryEscape(c.GetServiceId())+
			",com.docker.swarm.task.id="+url.QueryEscape(c.GetTaskId())+" "...)
	}
	data := m.GetData()
	for len(data) > 0 {
		line := data
		if i := strings.IndexByte(string(data), '\n'); i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			data = nil
		}
		buf := make([]byte, 0, len(prefix)+len(line)+9)
		if !tty {
			buf = append(buf, 1, 0, 0, 0, 0, 0, 0, 0)
			if isErr {
				buf[0] = 2
			}
		}
		buf = append(buf, prefix...)
		buf = append(buf, line...)
		if line[len(line)-1] != '\n' {
			buf = append(buf, '\n')
		}
		if !tty {
			binary.BigEndian.PutUint32(buf[4:8], uint32(len(buf)-8))
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}
