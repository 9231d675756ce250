package containerd

import (
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// copyImage copies the image at from to the tag to in the test registry
// and returns its digest.
func copyImage(t *testing.T, from, to string) string {
	t.Helper()
	src, err := name.ParseReference(from, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := name.ParseReference(to, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(dst, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// A task whose image is "name:tag@sha256:..." (what service create
// records) runs the image of the digest, not what the tag points to now.
func TestPinnedImageRunsTheDigest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tag := registryHost + "/shoal/pinned-" + randHex(4) + ":v1"
	a := copyImage(t, busyboxRef, tag)
	b := copyImage(t, whoamiRef, tag) // the tag moves to another image
	if a == b {
		t.Fatal("busybox and whoami have one digest")
	}
	pinned := tag + "@" + a
	img, err := e.ex.ensureImage(ctxT(t, time.Minute), pinned)
	if err != nil {
		t.Fatalf("pull %s: %v", pinned, err)
	}
	if got := img.Target().Digest.String(); got != a {
		t.Errorf("pulled %s, want the pinned %s (the tag points to %s)", got, a, b)
	}
	// busybox has a shell, whoami none: the task runs only on the
	// pinned image.
	_, err, logs := e.run(e.task(pinned, "sh", "-c", "echo pinned"))
	if err != nil || logs != "pinned\n" {
		t.Errorf("task on %s: %v, logs %q", pinned, err, logs)
	}
}
