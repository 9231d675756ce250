package images

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shoal-project/shoal/internal/testutil"
)

func TestPushAndPullBack(t *testing.T) {
	reg := StartRegistry(t)
	for _, n := range Names() {
		ref := PushTest(t, reg, n)
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(r)
		if err != nil {
			t.Fatalf("pull back %s: %v", ref, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS != "linux" || cf.Architecture == "" {
			t.Errorf("%s: platform %s/%s", n, cf.OS, cf.Architecture)
		}
		entries := tarEntries(t, img)
		switch n {
		case Busybox:
			if !slices.Equal(cf.Config.Cmd, []string{"sleep", "3600"}) {
				t.Errorf("busybox cmd = %q", cf.Config.Cmd)
			}
			for _, want := range []string{"bin/busybox", "bin/sh", "bin/sleep", "etc/passwd", "tmp"} {
				if _, ok := entries[want]; !ok {
					t.Errorf("busybox image lacks %s", want)
				}
			}
			if h := entries["bin/sh"]; h != nil && h.Linkname != "/bin/busybox" {
				t.Errorf("bin/sh links to %q", h.Linkname)
			}
		case Whoami:
			if !slices.Equal(cf.Config.Entrypoint, []string{"/whoami"}) {
				t.Errorf("whoami entrypoint = %q", cf.Config.Entrypoint)
			}
			if _, ok := entries["whoami"]; !ok {
				t.Error("whoami image lacks /whoami")
			}
		}
	}
}

func tarEntries(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read image filesystem: %v", err)
		}
		out[strings.TrimSuffix(h.Name, "/")] = h
	}
}

// whoami runs as a plain process here: the executor tests run it in
// containers.
func TestWhoamiServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := buildWhoamiBinary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "whoami")
	if err := os.WriteFile(path, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	cmd := exec.Command(path)
	cmd.Env = []string{"PORT=" + strconv.Itoa(port), "TASK_NAME=web.1.abc"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	base := "http://127.0.0.1:" + strconv.Itoa(port)
	var body string
	testutil.EventuallyErr(t, 20*time.Second, 50*time.Millisecond, func() error {
		body, err = get(base + "/")
		return err
	}, "GET / to answer")
	host, _ := os.Hostname()
	for _, want := range []string{"hostname: " + host + "\n", "task: web.1.abc\n", "requests: 1\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("GET / = %q, want a line %q", body, want)
		}
	}
	if body, err = get(base + "/"); err != nil || !strings.Contains(body, "requests: 2\n") {
		t.Errorf("second GET / = %q, %v; want requests: 2", body, err)
	}
	if body, err = get(base + "/health"); err != nil || body != "ok\n" {
		t.Errorf("GET /health = %q, %v", body, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("whoami after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("whoami did not stop after SIGTERM")
	}
}

func get(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), errors.New(resp.Status)
	}
	return string(b), nil
}

func TestUnknownImage(t *testing.T) {
	if _, err := Build(context.Background(), "nope"); err == nil || !strings.Contains(err.Error(), "unknown image") {
		t.Fatalf("Build(nope) = %v", err)
	}
}
