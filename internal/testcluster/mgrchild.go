package testcluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"runtime/metrics"
	rpprof "runtime/pprof"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/shoal-project/shoal/manager"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// A manager process is the test binary run again as a child (see
// RunFleetProcessIfAsked) holding one manager.Manager: its gRPC services
// (the cluster API and raft, over mTLS) on a 127.0.0.1 TCP port, raft
// messages over gRPC as in shoald, and a probe, an HTTP server on another
// loopback port through which the harness reads the manager's state
// (probeStatus, TaskCounts...) and its Go profiles (/debug/pprof/) and records objects a join would (Nodes,
// the Cluster at bootstrap) without a Control API call for each.
//
// The protocol: on the child's stdin one managerConfig; on its stdout one
// managerReady line once it serves. Stdin's end stops the manager and the
// child exits 0; the harness kills it with SIGKILL to crash it. Its stderr
// is the parent's.

// managerEnv marks a manager child.
const managerEnv = "SHOAL_TESTCLUSTER_MANAGER_PROCESS"

// noTicketsEnv, set in the parent's environment, makes the manager children
// issue no TLS session tickets, so that every reconnect of an agent is a
// full handshake, as before the managers shared ticket keys (A/B runs).
const noTicketsEnv = "SHOAL_TESTCLUSTER_NO_TICKETS"

// noShedEnv, when set, makes manager processes admit every new connection
// however overloaded (manager.Config.NoShedding), for A/B runs.
const noShedEnv = "SHOAL_TESTCLUSTER_NO_SHED"

type managerConfig struct {
	Name, NodeID, ClusterID string
	Cert, Key, CAPEM        []byte // PEM
	RaftPath                string
	// Addr is the loopback address to serve on and advertise.
	Addr string
	// Mode is how raft starts: raftstore.Bootstrap, JoinExisting (through
	// JoinVia, as `swarm join` does) or Restart.
	Mode    raftstore.StartMode
	JoinVia string
	Tick    time.Duration // 0: the default
	// ElectionHold is manager.Config.ElectionHold.
	ElectionHold time.Duration
	// LogInfo logs at level INFO on stderr (ProcOptions.LogDir), as
	// shoald does; otherwise as envLogger.
	LogInfo bool
}

type managerReady struct {
	Probe string // the probe's address
}

// probeStatus is GET /status.
type probeStatus struct {
	Leading    bool
	Term       uint64
	Applied    uint64
	Heap       uint64 // live and unswept heap objects, bytes
	Goroutines int
	// MarkedDown counts the nodes its dispatchers marked down for missed
	// heartbeats (Manager.NodesMarkedDown).
	MarkedDown uint64
}

// probeCreate is POST /create: objects to create unless they exist.
type probeCreate struct {
	Cluster json.RawMessage   `json:",omitempty"` // protojson api.Cluster
	Nodes   []json.RawMessage // protojson api.Node
}

// runManager is the child's side.
func runManager(in io.Reader, out io.Writer) error {
	dec := json.NewDecoder(bufio.NewReader(in))
	var cfg managerConfig
	if err := dec.Decode(&cfg); err != nil {
		return fmt.Errorf("read the config: %w", err)
	}
	kp, err := pki.NewKeyPair(cfg.Cert, cfg.Key)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(cfg.CAPEM) {
		return errors.New("the config's CA certificate is not PEM")
	}
	log := envLogger()
	if cfg.LogInfo {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	log = log.With("manager", cfg.Name)
	d := tcpDialer(cfg.Name, kp, pool)
	defer d.close()
	rd := tcpDialer(cfg.Name, kp, pool) // raft's own connections, as shoald's
	defer rd.close()
	mgr, err := manager.New(manager.Config{
		NodeID: cfg.NodeID, ClusterID: cfg.ClusterID, Addr: cfg.Addr, RaftPath: cfg.RaftPath,
		RootCAPEM: cfg.CAPEM, Raft: raftstore.Config{Tick: cfg.Tick}, Dial: d.dial, RaftDial: rd.dial, Logger: log,
		ElectionHold: cfg.ElectionHold, NoShedding: os.Getenv(noShedEnv) != "",
	})
	if err != nil {
		return err
	}
	authz, err := pki.NewAuthorizer(pki.AuthorizerConfig{
		ClusterID: cfg.ClusterID, Policy: manager.Policy(), Unauthenticated: manager.Unauthenticated,
		IsRemoved: mgr.IsRemovedNode, IsDemoted: mgr.IsDemotedNode,
	})
	if err != nil {
		mgr.Close()
		return err
	}
	tlsCfg := pki.ServerConfig(kp, pool, mgr.TicketKeys())
	if os.Getenv(noTicketsEnv) != "" {
		tlsCfg.SessionTicketsDisabled = true
	}
	pki.Admit(tlsCfg, mgr.AdmitHandshake)
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsCfg)),
		grpc.ChainUnaryInterceptor(errorsUnary, authz.UnaryServerInterceptor(), mgr.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(errorsStream, authz.StreamServerInterceptor(), mgr.StreamInterceptor()),
		grpc.MaxRecvMsgSize(maxMsg), grpc.MaxSendMsgSize(maxMsg),
		grpc.ReadBufferSize(0), // as shoald: TLS buffers each record already
	)
	mgr.Register(srv)
	lis, err := listenRetry(cfg.Addr)
	if err != nil {
		mgr.Close()
		return err
	}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	if cfg.Mode == raftstore.JoinExisting {
		if err := joinRetry(mgr, cfg.JoinVia); err != nil {
			mgr.Close()
			return err
		}
	}
	plis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		mgr.Close()
		return err
	}
	probe := &http.Server{Handler: probeHandler(mgr), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = probe.Serve(plis) }()
	defer probe.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- mgr.Run(ctx, cfg.Mode) }()
	if err := json.NewEncoder(out).Encode(managerReady{Probe: plis.Addr().String()}); err != nil {
		return err
	}
	ended := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, in)
		close(ended)
	}()
	select {
	case <-ended:
		cancel()
		select {
		case err := <-ran:
			if errors.Is(err, context.Canceled) {
				err = nil
			}
			return err
		case <-time.After(30 * time.Second):
			return errors.New("the manager did not stop within 30s of stdin's end")
		}
	case err := <-ran:
		return fmt.Errorf("the manager stopped on its own: %v", err)
	}
}

// listenRetry listens on addr, retrying for 10 s: after a kill -9 the
// kernel may still hold the port for a moment.
func listenRetry(addr string) (net.Listener, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			return l, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// joinRetry joins raft through via, retried for a minute (the leader may
// be busy or changing).
func joinRetry(mgr *manager.Manager, via string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := mgr.JoinRaft(ctx, via)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// probeHandler serves the harness's reads and writes of mgr's state.
func probeHandler(mgr *manager.Manager) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		ms := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		metrics.Read(ms)
		st := probeStatus{Leading: mgr.Leading(), Term: mgr.Raft().Term(), Applied: mgr.Raft().AppliedIndex(),
			Goroutines: runtime.NumGoroutine(), MarkedDown: mgr.NodesMarkedDown()}
		if ms[0].Value.Kind() == metrics.KindUint64 {
			st.Heap = ms[0].Value.Uint64()
		}
		reply(w, st, nil)
	})
	mux.HandleFunc("POST /create", func(w http.ResponseWriter, r *http.Request) {
		var req probeCreate
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			reply(w, nil, err)
			return
		}
		var cluster *api.Cluster
		if len(req.Cluster) > 0 {
			cluster = &api.Cluster{}
			if err := protojson.Unmarshal(req.Cluster, cluster); err != nil {
				reply(w, nil, err)
				return
			}
		}
		nodes := make([]*api.Node, len(req.Nodes))
		for i, raw := range req.Nodes {
			nodes[i] = &api.Node{}
			if err := protojson.Unmarshal(raw, nodes[i]); err != nil {
				reply(w, nil, err)
				return
			}
		}
		err := mgr.Store().Update(r.Context(), func(tx *raftstore.Tx) error {
			if cluster != nil && tx.Cluster(cluster.Id) == nil {
				if err := tx.Create(cluster); err != nil {
					return err
				}
			}
			for _, n := range nodes {
				if tx.Node(n.Id) == nil {
					if err := tx.Create(n); err != nil {
						return err
					}
				}
			}
			return nil
		})
		reply(w, struct{}{}, err)
	})
	mux.HandleFunc("POST /counts", viewHandler(mgr, CountTasks))
	mux.HandleFunc("POST /running", viewHandler(mgr, RunningTasks))
	mux.HandleFunc("POST /notready", viewHandler(mgr, NotReady))
	var prof cpuProfile
	mux.HandleFunc("POST /cpuprofile/start", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, struct{}{}, prof.start())
	})
	mux.HandleFunc("POST /cpuprofile/stop", func(w http.ResponseWriter, _ *http.Request) {
		b, err := prof.stop()
		if err != nil {
			reply(w, nil, err)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace) // the execution trace: who waited on what
	return mux
}

// cpuProfile is the child's CPU profile between a start and a stop call
// of the probe: a phase of the harness's scenario, whatever its length.
type cpuProfile struct {
	mu  sync.Mutex
	buf *bytes.Buffer // nil when not profiling
}

func (p *cpuProfile) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.buf != nil {
		return errors.New("a CPU profile is running already")
	}
	buf := &bytes.Buffer{}
	if err := rpprof.StartCPUProfile(buf); err != nil {
		return err
	}
	p.buf = buf
	return nil
}

func (p *cpuProfile) stop() ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.buf == nil {
		return nil, errors.New("no CPU profile runs")
	}
	rpprof.StopCPUProfile()
	b := p.buf.Bytes()
	p.buf = nil
	return b, nil
}

// viewHandler answers a POST whose JSON body is fn's query with fn's
// answer on mgr's store.
func viewHandler[Q, A any](mgr *manager.Manager, fn func(raftstore.ReadTx, Q) A) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var q Q
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil {
			reply(w, nil, err)
			return
		}
		var a A
		mgr.Store().View(func(tx raftstore.ReadTx) { a = fn(tx, q) })
		reply(w, a, nil)
	}
}

// reply writes v as JSON, or err as a 500 with its text.
func reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
