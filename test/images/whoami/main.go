// Command whoami is the HTTP server of shoal's whoami test image.
//
// It listens on :80 (or :$PORT). GET / answers one "key: value" per line:
// the hostname, the task name ($TASK_NAME, when set), the container's
// addresses and a counter of the requests this process has served, so tests
// can tell which replica answered. GET /health answers 200 "ok".
// SIGTERM and SIGINT shut it down gracefully with exit status 0.
// Any datagram to the same port over UDP is answered with the hostname and
// "remote: IP:port", the sender's address.
// `whoami -probe URL` checks a URL and exits 0 or 1, for health checks.
//
// It uses only the standard library: the image builder compiles it in a
// throwaway module with CGO_ENABLED=0.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	// `whoami -probe URL` is the image's own health probe: the image has no
	// shell or wget, so a health check runs the binary itself
	// (["CMD", "/whoami", "-probe", "http://127.0.0.1/health"]).
	if len(os.Args) == 3 && os.Args[1] == "-probe" {
		os.Exit(probe(os.Args[2]))
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "80"
	}
	var requests atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		n := requests.Add(1)
		host, _ := os.Hostname()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "hostname: %s\n", host)
		if name := os.Getenv("TASK_NAME"); name != "" {
			fmt.Fprintf(w, "task: %s\n", name)
		}
		for _, a := range addresses() {
			fmt.Fprintf(w, "ip: %s\n", a)
		}
		fmt.Fprintf(w, "remote: %s\n", r.RemoteAddr)
		fmt.Fprintf(w, "requests: %d\n", n)
	})
	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	go serveUDP(ctx, port)
	log.Printf("whoami listening on :%s", port)
	select {
	case err := <-errc:
		log.Fatal(err)
	case <-ctx.Done():
	}
	log.Print("whoami shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// addresses lists the non-loopback IP addresses of the container.
func addresses() []string {
	var out []string
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() {
			out = append(out, ipn.IP.String())
		}
	}
	return out
}

// probe GETs url and returns the exit status of a health check: 0 for a 2xx
// answer within 2 seconds, 1 otherwise.
func probe(url string) int {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		fmt.Fprintln(os.Stderr, resp.Status)
		return 1
	}
	return 0
}

// serveUDP answers every datagram on the same port over UDP with the
// hostname and the sender's address ("remote: IP:port"), so tests can check
// published UDP ports and the client address they keep. A failure to bind
// is logged, not fatal: the HTTP server is the image's main job.
func serveUDP(ctx context.Context, port string) {
	pc, err := net.ListenPacket("udp", ":"+port)
	if err != nil {
		log.Printf("whoami: no UDP echo: %v", err)
		return
	}
	go func() { <-ctx.Done(); pc.Close() }()
	host, _ := os.Hostname()
	buf := make([]byte, 2048)
	for {
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		msg := fmt.Sprintf("hostname: %s\nremote: %s\n", host, from)
		_, _ = pc.WriteTo([]byte(msg), from)
	}
}
