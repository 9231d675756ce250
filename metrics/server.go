package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config configures a Server.
type Config struct {
	// Addr is the host:port to listen on. Required.
	Addr string
	// Gatherer is the registry /metrics serves. Required.
	Gatherer prometheus.Gatherer
	// Ready answers /readyz: nil when ready, else why not. Required.
	Ready func(ctx context.Context) error
	// ReadyTimeout bounds one Ready call. Default 2s.
	ReadyTimeout time.Duration
	// Log receives serving errors. Default: slog.Default().
	Log *slog.Logger
}

// DefaultReadyTimeout is Config.ReadyTimeout's default.
const DefaultReadyTimeout = 2 * time.Second

func (c *Config) validate() error {
	switch {
	case c.Addr == "":
		return errors.New("metrics: no address")
	case c.Gatherer == nil:
		return errors.New("metrics: no registry")
	case c.Ready == nil:
		return errors.New("metrics: no readiness check")
	case c.ReadyTimeout < 0:
		return fmt.Errorf("metrics: negative ready timeout %v", c.ReadyTimeout)
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("metrics address %q: want host:port (e.g. 127.0.0.1:9323): %v", c.Addr, err)
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return nil
}

// Server serves /metrics, /healthz and /readyz.
type Server struct {
	cfg  Config
	lis  net.Listener
	srv  *http.Server
	done chan struct{}
	once sync.Once
}

// Listen checks cfg, opens its address and starts serving. An address in
// use is an error that names it.
func Listen(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("metrics address %s: %w", cfg.Addr, err)
	}
	s := &Server{cfg: cfg, lis: lis, done: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Log.Error("metrics: serving stopped", "addr", lis.Addr().String(), "err", err)
		}
	}()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Handler serves the three endpoints (tests use it without a listener).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(s.cfg.Log.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             20 * time.Second,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	return mux
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.cfg.Ready(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// Close stops serving: requests in flight get until ctx ends to finish.
// It waits for the serving goroutine.
func (s *Server) Close(ctx context.Context) error {
	var err error
	s.once.Do(func() {
		if err = s.srv.Shutdown(ctx); err != nil {
			_ = s.srv.Close()
		}
		<-s.done
	})
	return err
}
