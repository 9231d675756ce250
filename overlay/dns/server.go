package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// startTimeout bounds how long AddTask waits for a task's servers to start;
// stopTimeout how long RemoveTask and Close wait for them to stop (a
// forwarded query in flight lasts at most ForwardTimeout).
const (
	startTimeout = 5 * time.Second
	stopTimeout  = 5 * time.Second
)

// ErrClosed is returned by AddTask after Close.
var ErrClosed = errors.New("dns: server is closed")

// Server is the node's DNS server: one listener pair per task namespace.
type Server struct {
	cfg Config

	mu     sync.Mutex // serializes AddTask, RemoveTask, Close; guards tasks, closed
	tasks  map[string]*task
	closed bool
}

// task is one task's listeners, living in its namespace.
type task struct {
	id        string
	netnsPath string
	udp, tcp  *mdns.Server
	served    chan error // one value per server when its serve loop returns
	inflight  chan struct{}
	srv       *Server
}

// New validates cfg and returns a Server with no task.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, tasks: map[string]*task{}}, nil
}

// Upstreams returns the upstream resolvers in use, "IP:port".
func (s *Server) Upstreams() []string { return append([]string(nil), s.cfg.Upstreams...) }

// AddTask starts answering at 127.0.0.11:53 inside the network namespace
// at netnsPath for task taskID. It is idempotent for the same path; a new
// path for a known task replaces the old listeners.
func (s *Server) AddTask(taskID, netnsPath string) error {
	if taskID == "" || netnsPath == "" {
		return fmt.Errorf("dns: AddTask(%q, %q): task ID and namespace path are required", taskID, netnsPath)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if old, ok := s.tasks[taskID]; ok {
		if old.netnsPath == netnsPath {
			return nil
		}
		delete(s.tasks, taskID)
		if err := old.stop(); err != nil {
			s.cfg.Log.Warn("dns: stop replaced task listeners", "task", taskID, "err", err)
		}
	}
	t, err := s.start(taskID, netnsPath)
	if err != nil {
		return err
	}
	s.tasks[taskID] = t
	return nil
}

// start opens the task's sockets and DNAT table and starts its servers.
func (s *Server) start(taskID, netnsPath string) (*task, error) {
	pc, ln, err := openInNetns(netnsPath)
	if err != nil {
		return nil, err
	}
	udpPort := pc.LocalAddr().(*net.UDPAddr).Port
	tcpPort := ln.Addr().(*net.TCPAddr).Port
	if err := installDNAT(netnsPath, uint16(udpPort), uint16(tcpPort)); err != nil {
		pc.Close()
		ln.Close()
		return nil, err
	}
	t := &task{id: taskID, netnsPath: netnsPath, served: make(chan error, 2),
		inflight: make(chan struct{}, s.cfg.MaxInflight), srv: s}
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	t.udp = &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(t.serveDNS), NotifyStartedFunc: notify}
	t.tcp = &mdns.Server{Listener: ln, Handler: mdns.HandlerFunc(t.serveDNS), NotifyStartedFunc: notify}
	for _, srv := range []*mdns.Server{t.udp, t.tcp} {
		go func() { t.served <- srv.ActivateAndServe() }()
	}
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	for n := 0; n < 2; {
		select {
		case <-started:
			n++
		case err := <-t.served:
			t.served <- err // let stop count it
			_ = t.stop()
			return nil, fmt.Errorf("dns: task %s: DNS server did not start: %w", taskID, err)
		case <-timer.C:
			_ = t.stop()
			return nil, fmt.Errorf("dns: task %s: DNS servers did not start within %v", taskID, startTimeout)
		}
	}
	s.cfg.Log.Debug("dns: serving task", "task", taskID, "netns", netnsPath, "udp_port", udpPort, "tcp_port", tcpPort)
	return t, nil
}

// stop shuts the task's servers down (closing its sockets), waits for their
// loops, and deletes the DNAT table if the namespace still exists.
func (t *task) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	var errs []error
	for _, srv := range []*mdns.Server{t.udp, t.tcp} {
		if err := srv.ShutdownContext(ctx); err != nil {
			// Not started: close the socket ourselves.
			if srv.PacketConn != nil {
				srv.PacketConn.Close()
			}
			if srv.Listener != nil {
				srv.Listener.Close()
			}
		}
	}
	for range 2 {
		select {
		case <-t.served:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("dns: task %s: servers did not stop within %v", t.id, stopTimeout))
		}
		if ctx.Err() != nil {
			break
		}
	}
	if err := removeDNAT(t.netnsPath); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RemoveTask stops answering for the task: its sockets are closed and its
// DNAT table deleted (it goes with the namespace anyway). Unknown tasks are
// not an error.
func (s *Server) RemoveTask(taskID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[taskID]
	if !ok {
		return nil
	}
	delete(s.tasks, taskID)
	return t.stop()
}

// Tasks returns the IDs of the tasks served.
func (s *Server) Tasks() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.tasks))
	for id := range s.tasks {
		ids = append(ids, id)
	}
	return ids
}

// Close stops every task's servers. AddTask fails afterwards; Close is
// idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	var errs []error
	for id, t := range s.tasks {
		delete(s.tasks, id)
		errs = append(errs, t.stop())
	}
	return errors.Join(errs...)
}
