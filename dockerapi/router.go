package dockerapi

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// API versions served. A client asks for one in the path (/v1.NN/...);
// unversioned paths get MaxAPIVersion.
const (
	MinAPIVersion = "1.41"
	MaxAPIVersion = "1.50"
)

// handlerFunc is the one signature of every handler: an error is answered
// by writeError (errors.go).
type handlerFunc func(ctx context.Context, w http.ResponseWriter, r *http.Request) error

type ctxKey int

const versionKey ctxKey = iota

// APIVersion is the API version the request asked for.
func APIVersion(ctx context.Context) string {
	if v, ok := ctx.Value(versionKey).(string); ok {
		return v
	}
	return MaxAPIVersion
}

// routeOpt changes how a route runs.
type routeOpt int

const (
	// stream: no request deadline; the handler runs until the client goes
	// away or the server stops (logs --follow, events).
	stream routeOpt = iota + 1
)

// handle registers h at pattern ("GET /swarm").
func (s *Server) handle(pattern string, h handlerFunc, opts ...routeOpt) {
	isStream := false
	for _, o := range opts {
		isStream = isStream || o == stream
	}
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if isStream {
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			defer cancel()
			stop := context.AfterFunc(s.stopping, cancel) // the server stops: end the stream
			defer stop()
		} else {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, s.cfg.RequestTimeout)
			defer cancel()
		}
		if err := h(ctx, w, r.WithContext(ctx)); err != nil {
			if ctx.Err() != nil && r.Context().Err() != nil {
				return // the client went away
			}
			if ctx.Err() == context.DeadlineExceeded && !isStream {
				err = &httpError{code: http.StatusGatewayTimeout, msg: fmt.Sprintf("%s: no answer within %s (%v)", r.URL.Path, s.cfg.RequestTimeout, err)}
			}
			s.log.Debug("docker API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			writeError(w, err)
		}
	})
}

var versionedPath = regexp.MustCompile(`^/v([0-9]+(?:\.[0-9]+)?)(/.*)$`)

// versionMiddleware strips an optional /v1.NN prefix, refuses versions the
// server does not speak, stores the version in the context, and sets the
// headers dockerd sets on every answer.
func (s *Server) versionMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Api-Version", MaxAPIVersion)
		h.Set("Docker-Experimental", "false")
		h.Set("Ostype", "linux")
		h.Set("Server", "Docker/"+s.cfg.Version+" (linux)")
		version := MaxAPIVersion
		if m := versionedPath.FindStringSubmatch(r.URL.Path); m != nil {
			version = m[1]
			if c := compareVersions(version, MinAPIVersion); c < 0 {
				writeError(w, badRequest("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", version, MinAPIVersion))
				return
			}
			if compareVersions(version, MaxAPIVersion) > 0 {
				writeError(w, badRequest("client version %s is too new. Maximum supported API version is %s", version, MaxAPIVersion))
				return
			}
			r2 := new(http.Request)
			*r2 = *r
			u := *r.URL
			u.Path = m[2]
			u.RawPath = ""
			r2.URL = &u
			r = r2
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), versionKey, version)))
	})
}

// compareVersions compares dotted versions numerically ("1.9" < "1.41").
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// routes registers every endpoint.
func (s *Server) routes() {
	s.handle("HEAD /_ping", s.ping)
	s.handle("GET /_ping", s.ping)
	s.handle("GET /version", s.version)
	s.handle("GET /info", s.info)

	s.handle("POST /swarm/init", s.swarmInit)
	s.handle("POST /swarm/join", s.swarmJoin)
	s.handle("POST /swarm/leave", s.swarmLeave)
	s.handle("GET /swarm", s.swarmInspect)
	s.handle("POST /swarm/update", s.swarmUpdate)
	s.handle("GET /swarm/unlockkey", s.swarmUnlockKey)
	s.handle("POST /swarm/unlock", s.swarmUnlock)

	s.nodeRoutes()
	s.serviceRoutes()
	s.secretRoutes()
	s.networkRoutes()
	s.eventRoutes()
	s.volumeRoutes()

	s.unsupportedRoutes()
	s.handle("/", s.noRoute)
}

// noRoute answers what no route serves with dockerd's 404 "page not
// found" (dockerd answers a wrong method so too), saying which methods
// the path takes when it is served with others.
func (s *Server) noRoute(_ context.Context, _ http.ResponseWriter, r *http.Request) error {
	var takes []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		if _, pattern := s.mux.Handler(&http.Request{Method: m, URL: r.URL, Host: r.Host}); pattern != "" && pattern != "/" {
			takes = append(takes, m)
		}
	}
	if len(takes) > 0 {
		return notFound("page not found: %s does not take %s (it takes %s)", r.URL.Path, r.Method, strings.Join(takes, " or "))
	}
	return notFound("page not found: %s %s is not an Engine API endpoint", r.Method, r.URL.Path)
}
