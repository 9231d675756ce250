package dockerapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/dockerapi/events"
	"github.com/shoal-project/shoal/internal/unixsock"
	api "github.com/shoal-project/shoal/proto"
)

// Defaults of Config.
const (
	DefaultSocket         = "/run/shoal/docker.sock"
	DefaultSocketGroup    = "shoal"
	DefaultRequestTimeout = 2 * time.Minute
	DefaultShutdownGrace  = 5 * time.Second
	readHeaderTimeout     = 10 * time.Second
	idleTimeout           = 2 * time.Minute // an idle keep-alive connection is closed
)

// Config configures a Server. Zero fields take the defaults above.
type Config struct {
	// Conn reaches the node's control socket (Control, LocalNode, Logs,
	// Watch). Required.
	Conn grpc.ClientConnInterface
	// Socket is the unix socket to serve on (mode 0660); empty: none.
	Socket string
	// SocketGroup owns the socket when that group exists ("shoal").
	SocketGroup string
	// TCPAddr is a host:port to serve on with TLS; empty: none. TLS is then
	// required and must require and verify client certificates.
	TCPAddr string
	TLS     *tls.Config
	// Version is shoal's version, reported by /version and /info.
	Version string
	// DataDir is the node's data directory (/info's DockerRootDir).
	DataDir string
	// MaxBodyBytes bounds a request body (413 beyond).
	MaxBodyBytes int64
	// RequestTimeout bounds every request but streams.
	RequestTimeout time.Duration
	// ShutdownGrace is how long requests in flight may finish at stop.
	ShutdownGrace time.Duration
	Logger        *slog.Logger
	// InsecureRegistries are reached over plain HTTP besides loopback ones
	// when GET /distribution reads an image's digest (shoald's
	// --insecure-registry).
	InsecureRegistries []string
}

// Server is the Engine API gateway. Create it with New, run it with Serve.
type Server struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	control api.ControlClient
	local   api.LocalNodeClient
	logs    api.LogsClient // nil in tests without a node: logs answer 503
	// events feeds GET /events; nil without a Watch service (tests).
	events  *events.Source
	watcher *managerWatcher // wake it when this node becomes a manager
	svcJSON svcCache        // GET /services' encoded services, by version

	// stopping is cancelled when Serve's context ends: streams end.
	stopping context.Context
	stop     context.CancelFunc

	mu        sync.Mutex
	listening chan struct{} // closed once every listener listens
	tcpAddr   net.Addr
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Conn == nil {
		return nil, errors.New("dockerapi: Config.Conn is required")
	}
	s, err := newServer(cfg, api.NewControlClient(cfg.Conn), api.NewLocalNodeClient(cfg.Conn))
	if err != nil {
		return nil, err
	}
	s.logs = api.NewLogsClient(cfg.Conn)
	s.watcher = &managerWatcher{watch: api.NewWatchClient(cfg.Conn), local: s.local, kick: make(chan struct{}, 1)}
	s.events, err = events.New(events.Config{
		Watch:  s.watcher,
		Logger: slog.New(quietHandler{s.log.Handler()}),
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func newServer(cfg Config, control api.ControlClient, local api.LocalNodeClient) (*Server, error) {
	if cfg.SocketGroup == "" {
		cfg.SocketGroup = DefaultSocketGroup
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = DefaultShutdownGrace
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Version == "" {
		cfg.Version = "unknown"
	}
	if cfg.TCPAddr != "" {
		if cfg.TLS == nil {
			return nil, fmt.Errorf("--docker-tcp-addr %s: the Engine API is served over TCP only with mutual TLS; give --docker-tls-cert, --docker-tls-key and --docker-tls-ca, or run shoald in a swarm to use the node's certificate", cfg.TCPAddr)
		}
		if cfg.TLS.ClientAuth != tls.RequireAndVerifyClientCert && cfg.TLS.GetConfigForClient == nil {
			return nil, fmt.Errorf("--docker-tcp-addr %s: the TLS configuration must require and verify client certificates", cfg.TCPAddr)
		}
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), control: control, local: local, listening: make(chan struct{})}
	s.stopping, s.stop = context.WithCancel(context.Background())
	s.routes()
	return s, nil
}

// Handler is the gateway's HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.versionMiddleware(s.mux) }

// Listening is closed once Serve listens on every configured address.
func (s *Server) Listening() <-chan struct{} { return s.listening }

// TCPAddr is the TCP listener's address once Listening is closed; nil
// without one.
func (s *Server) TCPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tcpAddr
}

// Serve listens and serves until ctx ends, then stops gracefully and
// returns once every goroutine it started has ended. It fails at once when
// a listener cannot be opened.
func (s *Server) Serve(ctx context.Context) error {
	defer s.stop()
	var lns []net.Listener
	closeAll := func() {
		for _, l := range lns {
			_ = l.Close()
		}
	}
	if s.cfg.Socket != "" {
		l, err := s.listenUnix(s.cfg.Socket)
		if err != nil {
			return err
		}
		lns = append(lns, l)
	}
	if s.cfg.TCPAddr != "" {
		l, err := net.Listen("tcp", s.cfg.TCPAddr)
		if err != nil {
			closeAll()
			return fmt.Errorf("docker API on %s: %w", s.cfg.TCPAddr, err)
		}
		s.mu.Lock()
		s.tcpAddr = l.Addr()
		s.mu.Unlock()
		lns = append(lns, tls.NewListener(l, s.cfg.TLS))
	}
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	close(s.listening)
	var wg sync.WaitGroup
	if s.events != nil {
		// The event ring follows the manager's Watch stream while Serve
		// runs; on a worker it retries quietly until the node is promoted.
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.events.Run(s.stopping)
		}()
	}
	errc := make(chan error, len(lns))
	for _, l := range lns {
		s.log.Info("serving the Docker Engine API", "addr", l.Addr().String(), "api_versions", MinAPIVersion+"-"+MaxAPIVersion)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("docker API on %s: %w", l.Addr(), err)
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.stop() // streams end now
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	defer cancel()
	if hs.Shutdown(sctx) != nil {
		_ = hs.Close()
	}
	wg.Wait()
	return err
}

// listenUnix opens the unix socket: mode 0660, owned by SocketGroup when
// that group exists (else root's group), like dockerd's.
func (s *Server) listenUnix(path string) (net.Listener, error) {
	l, err := unixsock.Listen(path, 0o660)
	if errors.Is(err, unixsock.ErrInUse) {
		return nil, fmt.Errorf("docker API socket %w (another shoald, or dockerd): stop it or give this shoald another --docker-socket", err)
	}
	if err != nil {
		return nil, fmt.Errorf("docker API socket %s: %w", path, err)
	}
	if g, err := user.LookupGroup(s.cfg.SocketGroup); err == nil {
		gid, _ := strconv.Atoi(g.Gid)
		if err := os.Chown(path, -1, gid); err != nil {
			s.log.Warn("cannot give the docker API socket to its group", "socket", path, "group", s.cfg.SocketGroup, "err", err)
		}
	}
	return l, nil
}
