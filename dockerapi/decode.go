package dockerapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// DefaultMaxBodyBytes bounds a request body (Config.MaxBodyBytes).
const DefaultMaxBodyBytes = 8 << 20

// decodeBody reads r's JSON body into v strictly: one JSON value, no
// unknown field (keys match case-insensitively, as docker-py needs), at most
// limit bytes. Its errors name the field and what was wrong.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if r.Body == nil {
		return badRequest("the request body is empty: send a JSON object")
	}
	return decodeJSON(http.MaxBytesReader(w, r.Body, limit), v)
}

// decodeJSON is decodeBody without the HTTP parts (the fuzz target's).
func decodeJSON(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("invalid JSON in request body: more data after the JSON value: send exactly one JSON object")
	}
	return nil
}

func bodyError(err error) error {
	var mbe *http.MaxBytesError
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &mbe):
		return err // statusOf: 413
	case errors.Is(err, io.EOF):
		return badRequest("the request body is empty: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("invalid JSON in request body: it ends early (truncated?)")
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "(the body itself)"
		}
		return badRequest("invalid JSON in request body: field %s: cannot use a JSON %s as %s", field, te.Value, te.Type)
	case errors.As(err, &se):
		return badRequest("invalid JSON in request body: %v (at byte %d)", err, se.Offset)
	}
	return badRequest("invalid JSON in request body: %s", trimJSONPrefix(err))
}

// trimJSONPrefix turns `json: unknown field "X"` into `unknown field "X"`
// and says what to do about it.
func trimJSONPrefix(err error) string {
	msg := err.Error()
	const p = "json: "
	if len(msg) > len(p) && msg[:len(p)] == p {
		msg = msg[len(p):]
	}
	if len(msg) > 14 && msg[:14] == "unknown field " {
		msg = fmt.Sprintf("%s (the Engine API %s has no such field; check its spelling)", msg, MaxAPIVersion)
	}
	return msg
}
