package vip

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
)

// inNetns runs f on a thread switched into the namespace at path, then
// switches back. Sockets f opens stay in that namespace.
func inNetns(path string, f func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := netns.GetFromPath(path)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		// The thread stays locked and dies with its goroutine.
		return fmt.Errorf("switch back: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

func sh(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// topo is a test topology: a bridge namespace and node namespaces on one
// /24 behind it, all named with a per-test random prefix and deleted on
// cleanup.
type topo struct {
	t      testing.TB
	prefix string
	bridge string
}

func newTopo(t testing.TB) *topo {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	tp := &topo{t: t, prefix: "svip" + hex.EncodeToString(b)}
	tp.bridge = tp.ns("br")
	sh(t, "ip", "-n", tp.bridge, "link", "add", "br0", "type", "bridge")
	sh(t, "ip", "-n", tp.bridge, "link", "set", "br0", "up")
	return tp
}

// ns creates a namespace and returns its name (path /run/netns/<name>).
func (tp *topo) ns(suffix string) string {
	name := tp.prefix + "-" + suffix
	sh(tp.t, "ip", "netns", "add", name)
	tp.t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	sh(tp.t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// node creates a namespace with eth0 = addr/24 on the bridge.
func (tp *topo) node(suffix, addr string) string {
	name := tp.ns(suffix)
	v := "v-" + suffix
	sh(tp.t, "ip", "-n", tp.bridge, "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", name)
	sh(tp.t, "ip", "-n", tp.bridge, "link", "set", v, "master", "br0", "up")
	sh(tp.t, "ip", "-n", name, "addr", "add", addr+"/24", "dev", "eth0")
	sh(tp.t, "ip", "-n", name, "link", "set", "eth0", "up")
	return name
}

func nsPath(name string) string { return "/run/netns/" + name }
