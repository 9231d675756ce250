package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-project/shoal/node"
)

// --dashboard-addr: a taken default leaves the dashboard off; a taken
// explicit address, a remote one without auth and an empty token file
// are errors that name the flag.
func TestDashboardFlags(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	log := slog.New(slog.DiscardHandler)
	dataDir := t.TempDir()

	gw, err := (&dashFlags{addr: busy.Addr().String()}).gateway(log, dataDir)
	if err != nil || gw != nil {
		t.Fatalf("taken default address: %v, gateway %v; want off without error", err, gw != nil)
	}
	if _, err := (&dashFlags{addr: busy.Addr().String(), addrSet: true}).gateway(log, dataDir); err == nil ||
		!strings.Contains(err.Error(), "--dashboard-addr "+busy.Addr().String()) {
		t.Fatalf("taken explicit address: %v", err)
	}
	if _, err := (&dashFlags{addr: "0.0.0.0:0", addrSet: true}).gateway(log, dataDir); err == nil || !strings.Contains(err.Error(), "--dashboard-token-file") {
		t.Fatalf("remote address without auth: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (&dashFlags{addr: "0.0.0.0:0", addrSet: true, tokenFile: empty}).gateway(log, dataDir); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("empty token file: %v", err)
	}
	if gw, err := (&dashFlags{addr: ""}).gateway(log, dataDir); err != nil || gw != nil {
		t.Fatalf("empty address: %v %v", err, gw != nil)
	}
	gw, err = (&dashFlags{addr: "127.0.0.1:0", addrSet: true}).gateway(log, dataDir)
	if err != nil || gw == nil {
		t.Fatalf("free explicit address: %v", err)
	}
	// A loopback dashboard without a token file gets a token of its own,
	// kept private in the data directory and the same after a restart.
	tokenPath := filepath.Join(dataDir, "dashboard-token")
	fi, err := os.Stat(tokenPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the loopback dashboard's token file: %v %v", fi, err)
	}
	first, _ := os.ReadFile(tokenPath)
	if len(strings.TrimSpace(string(first))) != 64 {
		t.Fatalf("token %q, want 64 hex digits", first)
	}
	if _, err := (&dashFlags{addr: "127.0.0.1:0", addrSet: true}).gateway(log, dataDir); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(tokenPath); string(again) != string(first) {
		t.Fatal("the token changed on the next start")
	}
	if err := os.Chmod(tokenPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := (&dashFlags{addr: "127.0.0.1:0", addrSet: true}).gateway(log, dataDir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a token file others can read: %v", err)
	}
	// Run without a control connection: it fails and closes its listener.
	if err := gw(context.Background(), node.GatewayEnv{}); err == nil {
		t.Fatal("the dashboard ran without a control connection")
	}
}
