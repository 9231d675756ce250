package dockerapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/moby/moby/api/types/common"

	"github.com/shoal-project/shoal/dockerapi/filters"
	"github.com/shoal-project/shoal/errdefs"
)

// httpError is an error with its own HTTP status.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, a ...any) error {
	return &httpError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, a...)}
}

func notImplemented(format string, a ...any) error {
	return &httpError{code: http.StatusNotImplemented, msg: fmt.Sprintf(format, a...)}
}

func notFound(format string, a ...any) error {
	return &httpError{code: http.StatusNotFound, msg: fmt.Sprintf(format, a...)}
}

// Docker's own messages for the states a swarm node can be in. Clients
// (and people) recognise them.
const (
	msgNoManager = `This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.`
	msgWorker    = "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager."
	msgLocked    = `Swarm is encrypted and needs to be unlocked before it can be used. Please use "docker swarm unlock" to unlock it.`
	msgInSwarm   = `This node is already part of a swarm. Use "docker swarm leave" to leave this swarm and join another one.`
	msgNoSwarm   = "This node is not part of a swarm"
)

// swarmStates maps the beginnings of the node's own messages (package
// node) to docker's status and text.
var swarmStates = []struct {
	prefix string
	code   int
	msg    string
}{
	{"This node is not part of a swarm", http.StatusServiceUnavailable, msgNoManager},
	{"This node is not a swarm manager", http.StatusServiceUnavailable, msgWorker},
	{"Swarm is encrypted and needs to be unlocked", http.StatusServiceUnavailable, msgLocked},
	{"This node is already part of a swarm", http.StatusServiceUnavailable, msgInSwarm},
}

// statusOf is the one mapping of a handler's error to an HTTP status and
// the message the client prints ("Error response from daemon: <message>").
func statusOf(err error) (int, string) {
	msg := err.Error()
	var he *httpError
	if errors.As(err, &he) {
		return he.code, he.msg
	}
	var inv *filters.InvalidFilterError
	var syn *filters.SyntaxError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &inv), errors.As(err, &syn):
		return http.StatusBadRequest, msg
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than the limit of %d bytes: send a smaller body (the limit is set by shoald --docker-max-body)", mbe.Limit)
	}
	for _, s := range swarmStates {
		if strings.HasPrefix(msg, s.prefix) {
			return s.code, s.msg
		}
	}
	switch {
	case errdefs.IsInvalidArgument(err):
		return http.StatusBadRequest, msg
	case errdefs.IsNotFound(err):
		return http.StatusNotFound, msg
	case errdefs.IsAlreadyExists(err):
		return http.StatusConflict, msg
	case errdefs.IsConflict(err):
		if !strings.Contains(msg, "update out of sequence") {
			msg = "update out of sequence: " + msg
		}
		return http.StatusConflict, msg
	case errdefs.IsFailedPrecondition(err):
		return http.StatusBadRequest, msg
	case errdefs.IsPermissionDenied(err):
		return http.StatusForbidden, msg
	case errdefs.IsUnavailable(err):
		return http.StatusServiceUnavailable, msg
	case errors.Is(err, errdefs.ErrNotImplemented):
		return http.StatusNotImplemented, msg
	case errors.Is(err, errdefs.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, msg
	}
	return http.StatusInternalServerError, msg
}

// writeError answers err as docker does: {"message": "..."}.
func writeError(w http.ResponseWriter, err error) {
	code, msg := statusOf(err)
	writeJSON(w, code, common.ErrorResponse{Message: msg})
}

// writeJSON answers v with the status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
