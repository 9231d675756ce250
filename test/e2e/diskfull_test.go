package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/test/images"
)

// mountTmpfs mounts a tmpfs of size bytes on dir (created if needed).
func mountTmpfs(t *testing.T, dir string, size int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
}

// unmount unmounts dir, detaching it when something still holds it, and
// removes its parent. The daemon's cleanup (lab.CleanNode) may have
// unmounted it already.
func unmount(t *testing.T, dir string) {
	if err := unix.Unmount(dir, 0); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	}
	_ = os.RemoveAll(filepath.Dir(dir))
}

// fillDisk writes a file in dir until the file system is full.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for size := len(buf); size >= 512; {
		if _, err := f.Write(buf[:size]); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			size /= 2
		}
	}
	return path
}

// TestFullDataDirRefusesWritesShowsItAndResumes: a manager whose data dir
// fills up refuses writes with a sentence naming the raft log, the errno
// and the fix; `shoal info` and `shoal node ls` show it; once space is
// freed, writes work again within seconds, from the same shoald process.
func TestFullDataDirRefusesWritesShowsItAndResumes(t *testing.T) {
	testutil.RequiresContainerd(t) // and root, to mount a small tmpfs as the data dir
	reg := images.StartRegistry(t)
	whoami := images.PushTest(t, reg, images.Whoami)
	var data string
	// Registered before the daemon's cleanup, so it runs after it: the
	// daemon is dead and its containers are gone when the tmpfs goes.
	t.Cleanup(func() {
		if data != "" {
			unmount(t, data)
		}
	})
	d := newDaemon(t, "--insecure-registry", reg)
	data = filepath.Join(d.dir, "data")
	mountTmpfs(t, data, 64<<20)
	d.start()
	d.mustShoal("swarm", "init", "--advertise-addr", d.addr)
	d.mustShoal("service", "create", "-d", "--name", "before", "--replicas", "0", whoami)

	filler := fillDisk(t, data)
	want := "no space left on device writing " + filepath.Join(data, "raft", "raft.db") +
		": free space on that file system, then the manager resumes by itself"
	// The raft log may reuse pages it already has: create until it needs
	// new ones.
	var out string
	for i := 0; ; i++ {
		if i == 300 {
			t.Fatal("no service create failed with the data dir full")
		}
		o, err := d.shoal("service", "create", "-d", "--name", fmt.Sprintf("fill%d", i), "--replicas", "0",
			"--label", "pad="+strings.Repeat("p", 2<<10), whoami)
		if err != nil {
			out = o
			break
		}
	}
	if !strings.Contains(out, want) {
		t.Fatalf("the create that met the full disk says:\n%s\nwant it to say %q", out, want)
	}
	start := time.Now()
	out, err := d.shoal("service", "create", "-d", "--name", "during", "--replicas", "0", whoami)
	if err == nil || !strings.Contains(out, "Error response from daemon: "+want) {
		t.Fatalf("create while the disk is full: %v\n%s", err, out)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the refused create took %v", took)
	}
	if ls := d.mustShoal("service", "ls"); !strings.Contains(ls, "before") {
		t.Errorf("service ls while the disk is full:\n%s", ls)
	}
	if info := d.mustShoal("info"); !strings.Contains(info, "  Raft Log Error: "+want) {
		t.Errorf("shoal info does not show the fault:\n%s", info)
	}
	if nodes := d.mustShoal("node", "ls"); !strings.Contains(nodes, "Unreachable (disk full)") {
		t.Errorf("node ls does not show the fault:\n%s", nodes)
	}
	if insp := d.mustShoal("node", "inspect", "--pretty", "self"); !strings.Contains(insp, "Raft Log:") {
		t.Errorf("node inspect --pretty does not show the fault:\n%s", insp)
	}

	pid := d.cmd.Process.Pid
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	waitFor(t, 15*time.Second, "a create to succeed after space was freed", func() error {
		out, err := d.shoal("service", "create", "-d", "--name", "after", whoami)
		if err != nil && !strings.Contains(out, "already exists") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	t.Logf("a create succeeded %v after space was freed", time.Since(freed).Round(100*time.Millisecond))
	select {
	case <-d.exited:
		t.Fatalf("shoald exited: %v", d.exitErr)
	default:
	}
	if d.cmd.Process.Pid != pid {
		t.Fatal("shoald was restarted")
	}
	if info := d.mustShoal("info"); strings.Contains(info, "Raft Log Error") {
		t.Errorf("shoal info still shows a fault:\n%s", info)
	}
	if nodes := d.mustShoal("node", "ls"); !strings.Contains(nodes, "Leader") || strings.Contains(nodes, "disk full") {
		t.Errorf("node ls after recovery:\n%s", nodes)
	}
	t.Logf("checks done %v after space was freed", time.Since(freed).Round(100*time.Millisecond))
	waitRunning(t, d, 1, 60*time.Second)
}
