// Package images builds the small OCI images that shoal's tests and demos
// run, without Docker and without the internet, and pushes them to a
// registry.
//
//   - busybox: Debian's static busybox (/bin/busybox of busybox-static) with a
//     symlink per applet, a minimal /etc (passwd, group with root, nobody and
//     an unprivileged "shoal" user 1000:1000) and the default command
//     "sleep 3600", so a service made from it keeps running.
//   - whoami: a static Go HTTP server (source in whoami/main.go, embedded in
//     this package and built with CGO_ENABLED=0 by the local Go toolchain).
//
// Built images are cached per process: they are immutable values, and tests
// in one binary push the same image to many registries.
//
// The package is a library for tests (StartRegistry, PushTest) and for the
// shoal-imagebuild command.
package images

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Names of the images this package can build.
const (
	Busybox = "busybox"
	Whoami  = "whoami"
)

// Names lists every image Build knows, in a stable order.
func Names() []string { return []string{Busybox, Whoami} }

// BusyboxPath is the static busybox binary copied into the busybox image.
// It must be statically linked: the image has no libc.
var BusyboxPath = "/bin/busybox"

//go:embed whoami/main.go
var whoamiSource []byte

// defaultPath is the PATH the images declare, as Docker images usually do.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// epoch is the modification time of every file in the layers, so that the
// same inputs give the same digests.
var epoch = time.Unix(0, 0).UTC()

var (
	cacheMu sync.Mutex
	cache   = map[string]v1.Image{}
)

// Build returns the named image (see Names), building it on first use.
func Build(ctx context.Context, imageName string) (v1.Image, error) {
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if img, ok := cache[imageName]; ok {
		return img, nil
	}
	var (
		img v1.Image
		err error
	)
	switch imageName {
	case Busybox:
		img, err = buildBusybox()
	case Whoami:
		img, err = buildWhoami(ctx)
	default:
		return nil, fmt.Errorf("unknown image %q (known: %s)", imageName, strings.Join(Names(), ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("build image %s: %w", imageName, err)
	}
	cache[imageName] = img
	return img, nil
}

// Ref is the reference an image is pushed under by PushTest and
// shoal-imagebuild: REGISTRY/shoal/NAME:latest.
func Ref(registry, imageName string) string {
	return registry + "/shoal/" + imageName + ":latest"
}

// Push writes img to ref ("host:port/repo:tag"). insecure allows plain
// HTTP; go-containerregistry already uses HTTP for localhost, loopback and
// private addresses.
func Push(ctx context.Context, img v1.Image, ref string, insecure bool) error {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}

// layerFile is one entry of a layer built in memory.
type layerFile struct {
	name string // path without a leading slash
	mode int64
	typ  byte
	data []byte
	link string
}

// layer packs files into an uncompressed tar and wraps it as a layer;
// go-containerregistry compresses it when the image is written.
func layer(files []layerFile) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{
			Name:     f.name,
			Mode:     f.mode,
			Typeflag: f.typ,
			Linkname: f.link,
			Size:     int64(len(f.data)),
			ModTime:  epoch,
			Format:   tar.FormatPAX,
		}
		if f.typ == tar.TypeDir && !strings.HasSuffix(h.Name, "/") {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if len(f.data) > 0 {
			if _, err := tw.Write(f.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
}

// image makes a single-layer image for the local platform with cfg.
func image(l v1.Layer, cfg v1.Config) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.Created = v1.Time{Time: epoch}
	cf.Config = cfg
	return mutate.ConfigFile(img, cf)
}

func dir(p string, mode int64) layerFile {
	return layerFile{name: p, mode: mode, typ: tar.TypeDir}
}

func file(p string, mode int64, data string) layerFile {
	return layerFile{name: p, mode: mode, typ: tar.TypeReg, data: []byte(data)}
}

// etcFiles are the files every image gets so that user names resolve and
// the runtime finds mount points for /etc/hosts and /etc/resolv.conf.
func etcFiles() []layerFile {
	return []layerFile{
		dir("etc", 0o755),
		file("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n"+
			"shoal:x:1000:1000:shoal:/home/shoal:/bin/sh\n"+
			"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
		file("etc/group", 0o644, "root:x:0:\nshoal:x:1000:\nnogroup:x:65534:\n"),
		file("etc/hosts", 0o644, ""),
		file("etc/hostname", 0o644, ""),
		file("etc/resolv.conf", 0o644, ""),
		dir("tmp", 0o1777),
	}
}

func buildBusybox() (v1.Image, error) {
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("read static busybox (apt-get install busybox-static): %w", err)
	}
	// --list-full names each applet with its usual directory.
	out, err := exec.Command(BusyboxPath, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list-full: %w", BusyboxPath, err)
	}
	applets := strings.Fields(string(out))
	sort.Strings(applets)

	files := []layerFile{
		dir("bin", 0o755), dir("sbin", 0o755), dir("usr", 0o755),
		dir("usr/bin", 0o755), dir("usr/sbin", 0o755),
		dir("root", 0o700), dir("home", 0o755), dir("home/shoal", 0o755),
		dir("var", 0o755), dir("proc", 0o555), dir("sys", 0o555), dir("dev", 0o755),
		{name: "bin/busybox", mode: 0o755, typ: tar.TypeReg, data: bin},
	}
	files = append(files, etcFiles()...)
	seen := map[string]bool{"bin/busybox": true}
	for _, a := range applets {
		a = strings.TrimPrefix(a, "/")
		if seen[a] || !strings.Contains(a, "/") {
			continue
		}
		seen[a] = true
		files = append(files, layerFile{name: a, mode: 0o777, typ: tar.TypeSymlink, link: "/bin/busybox"})
	}
	l, err := layer(files)
	if err != nil {
		return nil, err
	}
	return image(l, v1.Config{
		Env: []string{defaultPath},
		Cmd: []string{"sleep", "3600"},
	})
}

func buildWhoami(ctx context.Context) (v1.Image, error) {
	bin, err := buildWhoamiBinary(ctx)
	if err != nil {
		return nil, err
	}
	files := append(etcFiles(), layerFile{name: "whoami", mode: 0o755, typ: tar.TypeReg, data: bin})
	l, err := layer(files)
	if err != nil {
		return nil, err
	}
	return image(l, v1.Config{
		Env:          []string{defaultPath},
		Entrypoint:   []string{"/whoami"},
		ExposedPorts: map[string]struct{}{"80/tcp": {}},
	})
}

// buildWhoamiBinary compiles the embedded source in a throwaway module, so it
// works from any binary on any machine with a Go toolchain, not only from
// this repository's tree. The Go build cache makes repeated builds cheap.
func buildWhoamiBinary(ctx context.Context) ([]byte, error) {
	goBin, err := goTool()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(whoamiSource)
	dir, err := os.MkdirTemp("", "shoal-whoami-"+hex.EncodeToString(sum[:4])+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// go 1.22 in the throwaway go.mod: never asks for a newer toolchain.
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module whoami\n\ngo 1.22\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), whoamiSource, 0o644); err != nil {
		return nil, err
	}
	out := filepath.Join(dir, "whoami")
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=-buildvcs=false", "GOTOOLCHAIN=local", "GOWORK=off")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build whoami: %w\n%s", err, msg)
	}
	return os.ReadFile(out)
}

// goTool finds the go command: $PATH first, then the toolchain that built
// this binary, then the usual install location.
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	candidates := []string{"/usr/local/go/bin/go"}
	if root := runtime.GOROOT(); root != "" { //nolint:staticcheck // only a fallback hint
		candidates = append([]string{filepath.Join(root, "bin", "go")}, candidates...)
	}
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("no go toolchain found to build the whoami image (looked in $PATH and %s)", strings.Join(candidates, ", "))
}
