package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/test/images"
)

// TestVolumeLifecycleOnContainerd: a service's named volume mount shows in
// `volume ls` and `inspect` (its Mountpoint holds what the task wrote),
// `volume rm` is refused while the task's container exists and succeeds
// once it is gone, and prune removes an anonymous volume but keeps a
// named one unless -a.
func TestVolumeLifecycleOnContainerd(t *testing.T) {
	testutil.RequiresContainerd(t)
	reg := images.StartRegistry(t)
	busybox := images.PushTest(t, reg, images.Busybox)
	d := newDaemon(t, "--insecure-registry", reg)
	d.start()
	d.mustShoal("swarm", "init", "--advertise-addr", d.addr)

	d.mustShoal("service", "create", "-d", "--name", "writer", "--mount", "type=volume,source=data,target=/data",
		busybox, "sh", "-c", "echo hello > /data/hello && exec sleep 3600")
	waitRunning(t, d, 1, 60*time.Second)

	var mountpoint string
	waitFor(t, 30*time.Second, "volume data listed, holding the task's file", func() error {
		out, err := d.shoal("volume", "ls")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if want := "DRIVER    VOLUME NAME\nlocal     data\n"; out != want {
			return fmt.Errorf("volume ls:\n%s\nwant:\n%s", out, want)
		}
		mountpoint = strings.TrimSpace(d.mustShoal("volume", "inspect", "--format", "{{.Mountpoint}}", "data"))
		b, err := os.ReadFile(filepath.Join(mountpoint, "hello"))
		if err != nil || string(b) != "hello\n" {
			return fmt.Errorf("the file the task wrote: %q %v", b, err)
		}
		return nil
	})
	if want := filepath.Join(d.dir, "data", "executor", "volumes", "data", "_data"); mountpoint != want {
		t.Errorf("Mountpoint %s, want %s", mountpoint, want)
	}
	js := d.mustShoal("volume", "inspect", "data")
	for _, w := range []string{`"Driver": "local"`, `"Name": "data"`, `"Scope": "local"`, `"CreatedAt": "`, `"Mountpoint": "` + mountpoint + `"`} {
		if !strings.Contains(js, w) {
			t.Errorf("volume inspect lacks %s:\n%s", w, js)
		}
	}
	if out := d.mustShoal("volume", "ls", "--filter", "dangling=true", "-q"); out != "" {
		t.Errorf("ls dangling=true lists a volume in use: %q", out)
	}
	out, err := d.shoal("volume", "rm", "data")
	if err == nil || !strings.Contains(out, "Error response from daemon: remove data: volume is in use - [") {
		t.Fatalf("volume rm of a volume in use: %v\n%s", err, out)
	}
	out, err = d.shoal("volume", "rm", "-f", "data")
	if err == nil || !strings.Contains(out, "volume is in use") {
		t.Fatalf("volume rm -f of a volume in use: %v\n%s", err, out)
	}

	d.mustShoal("service", "rm", "writer")
	waitFor(t, 30*time.Second, "no containers after service rm", func() error {
		if n := containerCount(t, d.ns); n != 0 {
			return fmt.Errorf("%d containers", n)
		}
		return nil
	})
	if out := d.mustShoal("volume", "ls", "--filter", "dangling=true", "-q"); out != "data\n" {
		t.Errorf("ls dangling=true after the container went: %q", out)
	}
	if out := d.mustShoal("volume", "rm", "data"); out != "data\n" {
		t.Errorf("volume rm: %q", out)
	}
	if _, err := os.Stat(mountpoint); !os.IsNotExist(err) {
		t.Errorf("the volume's directory is still there: %v", err)
	}
	out, err = d.shoal("volume", "inspect", "data")
	if err == nil || out != "[]\nError: No such volume: data\n" {
		t.Errorf("inspect of the removed volume: %v\n%q", err, out)
	}
	out, err = d.shoal("volume", "rm", "data")
	if err == nil || out != "Error: No such volume: data\n" {
		t.Errorf("rm of a missing volume: %v\n%q", err, out)
	}

	// Prune: anonymous only without -a.
	anon := strings.TrimSpace(d.mustShoal("volume", "create"))
	if len(anon) != 64 {
		t.Fatalf("anonymous volume name %q", anon)
	}
	d.mustShoal("volume", "create", "--label", "keep=yes", "keep")
	out = d.mustShoal("volume", "prune", "-f")
	if want := "Deleted Volumes:\n" + anon + "\n\nTotal reclaimed space: 0B\n"; out != want {
		t.Errorf("volume prune:\n%s\nwant:\n%s", out, want)
	}
	if out := d.mustShoal("volume", "ls", "-q"); out != "keep\n" {
		t.Errorf("after prune: %q", out)
	}
	if out := d.mustShoal("volume", "ls", "--format", "{{.Name}} {{.Labels}}", "--filter", "label=keep"); out != "keep keep=yes\n" {
		t.Errorf("ls --filter label=keep: %q", out)
	}
	if out := d.mustShoal("volume", "prune", "-a", "-f", "--filter", "label!=keep"); out != "Total reclaimed space: 0B\n" {
		t.Errorf("prune -a --filter label!=keep: %q", out)
	}
	if out := d.mustShoal("volume", "prune", "-a", "-f"); !strings.Contains(out, "Deleted Volumes:\nkeep\n") {
		t.Errorf("prune -a: %q", out)
	}
	if out := d.mustShoal("volume", "ls", "-q"); out != "" {
		t.Errorf("after prune -a: %q", out)
	}
}
