package dashboard

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	api "github.com/shoal-project/shoal/proto"
)

// DefaultAddr is shoald's default --dashboard-addr: loopback only.
const DefaultAddr = "127.0.0.1:4243"

// cookieName holds the token after a login through the form.
const cookieName = "shoal_dashboard"

//go:embed assets
var assets embed.FS

// Config configures a Server.
type Config struct {
	// Conn reaches the node's control socket (Control and Watch).
	Conn grpc.ClientConnInterface
	// Listener is where to serve (required): shoald opens it before the
	// node starts, so that a bad address fails at once.
	Listener net.Listener
	// Token, when set, is required of every request: an Authorization
	// "Bearer TOKEN" header or the cookie the login form sets.
	Token string
	// TokenFile names where the token is kept, for the log line telling
	// how to log in (optional).
	TokenFile string
	// TLS, when set, serves HTTPS with it (e.g. NodeTLS: mutual TLS with
	// the swarm's certificates).
	TLS *tls.Config
	// ClientBuffer is how many changes an events client may fall behind
	// before it is cut off (default 4,096).
	ClientBuffer int
	// Logger (default discarded).
	Logger *slog.Logger
}

// Server is the dashboard's HTTP server.
type Server struct {
	cfg     Config
	control api.ControlClient
	hub     *hub
	handler http.Handler
}

// IsLoopback tells whether addr (host:port) only listens on loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckAuth refuses a non-loopback address served with neither a token
// nor mutual TLS: the dashboard can scale services and drain nodes.
func CheckAuth(addr string, token bool, mtls bool) error {
	if IsLoopback(addr) || token || mtls {
		return nil
	}
	return fmt.Errorf("--dashboard-addr %s is not a loopback address: give --dashboard-token-file or --dashboard-tls (the swarm's client certificates); the dashboard can change the cluster", addr)
}

// New makes a Server; Serve runs it.
func New(cfg Config) (*Server, error) {
	if cfg.Conn == nil || cfg.Listener == nil {
		return nil, errors.New("dashboard: Config.Conn and Config.Listener are required")
	}
	if cfg.ClientBuffer <= 0 {
		cfg.ClientBuffer = 4096
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := CheckAuth(cfg.Listener.Addr().String(), cfg.Token != "", cfg.TLS != nil); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, control: api.NewControlClient(cfg.Conn)}
	s.hub = newHub(api.NewWatchClient(cfg.Conn), cfg.ClientBuffer, cfg.Logger)
	s.handler = s.routes()
	return s, nil
}

// Handler is the server's HTTP handler (tests serve it themselves).
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves until ctx ends, then stops the server (open event streams
// end) and the hub, and returns nil; a serving error is returned.
func (s *Server) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelDebug),
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.hub.run(ctx)
	}()
	errc := make(chan error, 1)
	go func() {
		ln := s.cfg.Listener
		if s.cfg.TLS != nil {
			ln = tls.NewListener(ln, s.cfg.TLS)
		}
		errc <- srv.Serve(ln)
	}()
	attrs := []any{"addr", s.cfg.Listener.Addr().String(), "tls", s.cfg.TLS != nil, "token", s.cfg.Token != ""}
	if s.cfg.TokenFile != "" {
		scheme := "http"
		if s.cfg.TLS != nil {
			scheme = "https"
		}
		attrs = append(attrs, "login", fmt.Sprintf("open %s://%s/?token=TOKEN with the token in %s", scheme, s.cfg.Listener.Addr(), s.cfg.TokenFile))
	}
	s.cfg.Logger.Info("dashboard: serving", attrs...)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	shut, done := context.WithTimeout(context.Background(), 5*time.Second)
	_ = srv.Shutdown(shut) // event streams end with ctx (BaseContext)
	done()
	_ = srv.Close()
	if err == nil {
		<-errc
	}
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	mux.Handle("GET /", s.authPage(files))
	mux.HandleFunc("POST /login", s.login)
	mux.Handle("GET /api/state", s.authAPI(http.HandlerFunc(s.state)))
	mux.Handle("GET /api/events", s.authAPI(http.HandlerFunc(s.events)))
	mux.Handle("POST /api/services/{id}/scale", s.authAPI(http.HandlerFunc(s.scale)))
	mux.Handle("POST /api/services/{id}/rollback", s.authAPI(http.HandlerFunc(s.rollback)))
	mux.Handle("POST /api/nodes/{id}/availability", s.authAPI(http.HandlerFunc(s.availability)))
	return securityHeaders(s.checkHost(mux))
}

// checkHost refuses, on a dashboard without a token or TLS (a loopback
// one), requests whose Host is not a loopback name or address: a web page
// elsewhere could otherwise reach it through DNS rebinding (a name of its
// own resolving to 127.0.0.1) and read or change the cluster.
func (s *Server) checkHost(h http.Handler) http.Handler {
	if s.cfg.Token != "" || s.cfg.TLS != nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			host = hh
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			writeError(w, http.StatusMisdirectedRequest, fmt.Sprintf("this dashboard answers only at a loopback address (Host %q): open it as http://127.0.0.1:PORT or http://localhost:PORT", r.Host))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// securityHeaders keeps the page to its own origin's assets and out of
// frames.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// authorized tells whether r carries the token (header or cookie); always
// true without a token.
func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.Token == "" {
		return true
	}
	got := ""
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		got = strings.TrimPrefix(h, "Bearer ")
	} else if c, err := r.Cookie(cookieName); err == nil {
		got = c.Value
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) == 1
}

func (s *Server) authAPI(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			writeError(w, http.StatusUnauthorized, "this dashboard needs its token: send Authorization: Bearer TOKEN, or log in at /")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// authPage serves the assets, or the login form to a browser without the
// token.
func (s *Server) authPage(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			if q := r.URL.Query(); r.Method == http.MethodGet && q.Has("token") && (r.URL.Path == "/" || r.URL.Path == "/index.html") {
				// A link with the token (as the log prints it): log in,
				// and take the token out of the address bar.
				if !s.validToken(q.Get("token")) {
					writeError(w, http.StatusUnauthorized, "wrong token")
					return
				}
				s.setCookie(w, q.Get("token"))
				http.Redirect(w, r, "/", http.StatusSeeOther)
				return
			}
			if r.URL.Path != "/" && r.URL.Path != "/index.html" && r.URL.Path != "/style.css" {
				writeError(w, http.StatusUnauthorized, "log in at /")
				return
			}
			if r.URL.Path != "/style.css" {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(loginPage))
				return
			}
		}
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

const loginPage = `<!doctype html><html><head><meta charset="utf-8"><title>shoal dashboard: log in</title>
<link rel="stylesheet" href="/style.css"></head><body><main class="login"><h1>shoal</h1>
<form method="post" action="/login"><label>Dashboard token <input type="password" name="token" id="token" autofocus></label>
<button type="submit">Log in</button></form></main></body></html>`

// login checks the form's token and sets it as an HttpOnly, SameSite
// cookie.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	tok := r.PostFormValue("token")
	if !s.validToken(tok) {
		writeError(w, http.StatusUnauthorized, "wrong token")
		return
	}
	s.setCookie(w, tok)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) validToken(tok string) bool {
	return s.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.Token)) == 1
}

func (s *Server) setCookie(w http.ResponseWriter, tok string) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: tok, Path: "/", HttpOnly: true,
		Secure: s.cfg.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// NodeTLS serves with the node's own swarm certificate and accepts only
// clients whose certificate the swarm's root CA signed, as the Engine
// API's TCP listener does; current is asked at each handshake (the node
// renews its certificate).
func NodeTLS(current func() (*tls.Certificate, *x509.CertPool, bool)) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, roots, ok := current()
			if !ok {
				return nil, errors.New("this node is not in a swarm (or is locked): it has no certificate to serve the dashboard with")
			}
			return &tls.Config{
				Certificates: []tls.Certificate{*cert},
				ClientCAs:    roots,
				ClientAuth:   tls.RequireAndVerifyClientCert,
				MinVersion:   tls.VersionTLS12,
			}, nil
		},
	}
}
