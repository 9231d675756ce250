package dockercli

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

// TestDockerCLIVolumes: docker volume ls, inspect, rm, create and prune
// against one shoald, for the named volume a service mounts: listed with
// its Mountpoint holding the task's file, rm refused while the task's
// container exists, removed once it is gone. Prune follows the API
// version: the 28 CLI (API 1.50) keeps named volumes without -a, the 20.10
// one (API 1.41) removes every unused volume, as dockerd does.
func TestDockerCLIVolumes(t *testing.T) {
	forEachCLI(t, func(t *testing.T, c cli) {
		reg := images.StartRegistry(t)
		busybox := images.PushTest(t, reg, images.Busybox)
		d := startDaemon(t, c, "")
		d.mustDocker("swarm", "init", "--listen-addr", d.addr, "--advertise-addr", d.addr)
		d.mustDocker("service", "create", "-d", "--name", "writer", "--no-resolve-image",
			"--mount", "type=volume,source=data,target=/data",
			busybox, "sh", "-c", "echo hello > /data/hello && exec sleep 3600")

		var mountpoint string
		testutil.EventuallyErr(t, 60*time.Second, 250*time.Millisecond, func() error {
			out, err := d.docker("volume", "ls")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			if want := "DRIVER    VOLUME NAME\nlocal     data\n"; out != want {
				return fmt.Errorf("docker volume ls:\n%s\nwant:\n%s", out, want)
			}
			mountpoint = strings.TrimSpace(d.mustDocker("volume", "inspect", "--format", "{{.Mountpoint}}", "data"))
			if b, err := os.ReadFile(filepath.Join(mountpoint, "hello")); err != nil || string(b) != "hello\n" {
				return fmt.Errorf("the file the task wrote: %q %v", b, err)
			}
			return nil
		}, "docker volume ls lists data, holding the task's file")
		out := d.mustDocker("volume", "inspect", "--format", "{{.Name}} {{.Driver}} {{.Scope}}", "data")
		if out != "data local local\n" {
			t.Errorf("docker volume inspect --format: %q", out)
		}
		out, err := d.docker("volume", "rm", "data")
		if err == nil || !strings.Contains(out, "Error response from daemon: remove data: volume is in use - [") {
			t.Errorf("docker volume rm of a volume in use: %v\n%s", err, out)
		}
		// dockerd answers 404 "get nosuch: no such volume": the 20.10 CLI
		// prints "Error: No such volume: nosuch", the 28 one the message.
		out, err = d.docker("volume", "inspect", "nosuch")
		want := "Error response from daemon: get nosuch: no such volume"
		if c == docker2010 {
			want = "Error: No such volume: nosuch"
		}
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("docker volume inspect nosuch: %v\n%s", err, out)
		}

		d.mustDocker("service", "rm", "writer")
		testutil.EventuallyErr(t, 30*time.Second, 250*time.Millisecond, func() error {
			out, err := d.docker("volume", "rm", "data")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			if out != "data\n" {
				t.Errorf("docker volume rm: %q", out)
			}
			return nil
		}, "docker volume rm succeeds once the task's container is gone")
		if _, err := os.Stat(mountpoint); !os.IsNotExist(err) {
			t.Errorf("the volume's directory is still there: %v", err)
		}

		d.mustDocker("volume", "create", "--label", "keep=yes", "keep")
		anon := strings.TrimSpace(d.mustDocker("volume", "create"))
		if out := d.mustDocker("volume", "ls", "-q", "--filter", "label=keep=yes"); out != "keep\n" {
			t.Errorf("docker volume ls --filter label=keep=yes: %q", out)
		}
		out = d.mustDocker("volume", "prune", "-f")
		if !strings.Contains(out, anon) || !strings.Contains(out, "Total reclaimed space:") {
			t.Errorf("docker volume prune: %s", out)
		}
		left := d.mustDocker("volume", "ls", "-q")
		want = "keep\n"
		if c == docker2010 {
			want = "" // API 1.41: every unused volume
		}
		if left != want {
			t.Errorf("after docker volume prune: %q, want %q", left, want)
		}
		if c == docker28 {
			out = d.mustDocker("volume", "prune", "-a", "-f")
			if !strings.Contains(out, "keep") {
				t.Errorf("docker volume prune -a: %s", out)
			}
		}
	})
}
