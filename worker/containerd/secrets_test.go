package containerd

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/worker"
)

// mountsUnder lists the mount points of this mount namespace below prefix,
// each with its filesystem type and mount options.
func mountsUnder(t *testing.T, prefix string) map[string]string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasPrefix(f[4], prefix) {
			continue
		}
		for i, x := range f {
			if x == "-" && i+1 < len(f) {
				out[f[4]] = f[i+1] + " " + f[5]
			}
		}
	}
	return out
}

// grepTree fails the test if any regular file below root, except those
// below skip, contains needle.
func grepTree(t *testing.T, root, skip string, needle []byte) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (p == skip || p == filepath.Join(root, "netns")) {
			return filepath.SkipDir // the tmpfs itself; network namespaces are no files
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		if bytes.Contains(b, needle) {
			t.Errorf("the secret is in %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	if n == 0 {
		t.Errorf("no files under %s: the walk proves nothing", root)
	}
}

func TestSecretsAndConfigs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 90*time.Second)
	secret := []byte("s3cr3t-" + randHex(24))
	apiKey := []byte("key-" + randHex(24))
	deps := &fakeDeps{secrets: map[string]*api.Secret{}, configs: map[string]*api.Config{
		"cid1": {Id: "cid1", Spec: &api.ConfigSpec{Data: []byte("listen 8080\n")}},
		"cid2": {Id: "cid2", Spec: &api.ConfigSpec{Data: []byte("hello from a config\n")}},
	}}

	script := `stat -c '%n %a %u %g' /run/secrets/db_pass /run/secrets/api_key /etc/app/app.conf /motd
sha256sum /run/secrets/db_pass /run/secrets/api_key
cat /etc/app/app.conf /motd
echo "dir=$(stat -c '%a %U' /run/secrets)"
touch /run/secrets/new 2>/dev/null && echo secrets=rw || echo secrets=ro
echo done; exec sleep 3600`
	task := e.task(busyboxRef, "sh", "-c", script)
	cs := task.Spec.Container
	cs.User = "shoal"
	cs.ReadOnly = true
	cs.Secrets = []*api.SecretReference{
		{SecretId: "sid1", SecretName: "db_pass"},
		{SecretId: "sid2", SecretName: "api", File: &api.FileTarget{Name: "api_key", Uid: "1000", Gid: "1000", Mode: 0o400}},
	}
	cs.Configs = []*api.ConfigReference{
		{ConfigId: "cid1", ConfigName: "app", File: &api.FileTarget{Name: "/etc/app/app.conf", Mode: 0o644}},
		{ConfigId: "cid2", ConfigName: "motd"},
	}
	c, err := e.ex.Controller(task, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctl := c.(*controller)
	t.Cleanup(func() { c.Close() })

	// The secrets are not on the node yet: a transient failure, nothing left.
	err = c.Prepare(ctx)
	if err == nil || worker.IsRejected(err) || !strings.Contains(err.Error(), "secret db_pass (sid1) is not assigned to this node") {
		t.Fatalf("Prepare without the secrets = %v", err)
	}
	if _, err := e.cl.LoadContainer(ctx, task.Id); !cerrdefs.IsNotFound(err) {
		t.Errorf("container created without its secrets: %v", err)
	}
	if m := mountsUnder(t, e.dataDir); len(m) != 0 {
		t.Errorf("mounts after a failed Prepare: %v", m)
	}

	deps.secrets["sid1"] = &api.Secret{Id: "sid1", Spec: &api.SecretSpec{Data: secret}}
	deps.secrets["sid2"] = &api.Secret{Id: "sid2", Spec: &api.SecretSpec{Data: apiKey}}
	if err := c.Prepare(ctx); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	eventually(t, 20*time.Second, "the script to finish", func() bool { return strings.Contains(e.logs(ctl), "done\n") })
	logs := e.logs(ctl)
	sum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }
	for _, want := range []string{
		"/run/secrets/db_pass 444 0 0\n",
		"/run/secrets/api_key 400 1000 1000\n",
		"/etc/app/app.conf 644 0 0\n",
		"/motd 444 0 0\n",
		sum(secret) + "  /run/secrets/db_pass\n",
		sum(apiKey) + "  /run/secrets/api_key\n",
		"listen 8080\nhello from a config\n",
		"dir=755 root\n",
		"secrets=ro\n",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("output lacks %q; output:\n%s", want, logs)
		}
	}

	// On the host: one tmpfs, read-only, and the secret nowhere else: not
	// in the data dir, the log or the container's rootfs snapshot.
	dir := e.cfg.secretsDir(task.Id)
	m := mountsUnder(t, e.dataDir)
	if len(m) != 2 || !strings.HasPrefix(m[dir], "tmpfs ro,") {
		t.Errorf("mounts under the data dir = %v, want the task's netns and a read-only tmpfs at %s", m, dir)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("tmpfs root = %v, %v; want mode 0700", fi, err)
	}
	for _, s := range [][]byte{secret, apiKey} {
		grepTree(t, e.dataDir, dir, s)
		if strings.Contains(logs, string(s)) {
			t.Error("the secret is in the log")
		}
	}
	mounts, err := e.cl.SnapshotService(DefaultSnapshotter).Mounts(ctx, task.Id)
	if err != nil {
		t.Fatal(err)
	}
	upper := ""
	for _, mt := range mounts {
		for _, o := range mt.Options {
			if v, ok := strings.CutPrefix(o, "upperdir="); ok {
				upper = v
			}
		}
	}
	if upper == "" {
		t.Fatalf("no upper dir in %v", mounts)
	}
	if err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if b, rerr := os.ReadFile(p); rerr == nil && (bytes.Contains(b, secret) || bytes.Contains(b, apiKey)) {
				t.Errorf("the secret is in the rootfs snapshot: %s", p)
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}

	// The daemon restarts; the new controller knows nothing of the mounts
	// and still removes them, by path.
	ctl.Close()
	e.ex.Close()
	ex2, err := New(ctx, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.ex = ex2
	r := e.controller(task)
	if err := r.Prepare(ctx); !errors.Is(err, worker.ErrTaskPrepared) {
		t.Errorf("Prepare after restart = %v, want ErrTaskPrepared", err)
	}
	if err := r.Remove(ctx); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if m := mountsUnder(t, e.dataDir); len(m) != 0 {
		t.Errorf("mounts left by Remove: %v", m)
	}
	if _, err := os.Stat(e.cfg.taskDir(task.Id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("task dir left by Remove: %v", err)
	}
}

func TestSecretPrepareFailureUnmounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 60*time.Second)
	task := e.task(busyboxRef)
	task.Spec.Container.User = "nosuchuser" // rejected when the container is created
	task.Spec.Container.Secrets = []*api.SecretReference{{SecretId: "s", SecretName: "x"}}
	deps := &fakeDeps{secrets: map[string]*api.Secret{"s": {Id: "s", Spec: &api.SecretSpec{Data: []byte("pw")}}}}
	c, err := e.ex.Controller(task, deps)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Prepare(ctx); !worker.IsRejected(err) {
		t.Fatalf("Prepare = %v, want a rejection", err)
	}
	if m := mountsUnder(t, e.dataDir); len(m) != 0 {
		t.Errorf("mounts left by a failed Prepare: %v", m)
	}
	if _, err := os.Stat(e.cfg.taskDir(task.Id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("task dir left by a failed Prepare: %v", err)
	}
}

func TestSecretsRestoredAfterReboot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 60*time.Second)
	task := e.task(busyboxRef, "sh", "-c", "stat -c '%n %a' /run/secrets/x /cfg")
	task.Spec.Container.Secrets = []*api.SecretReference{{SecretId: "s", SecretName: "x"}}
	task.Spec.Container.Configs = []*api.ConfigReference{{ConfigId: "c", ConfigName: "cfg"}}
	deps := &fakeDeps{
		secrets: map[string]*api.Secret{"s": {Id: "s", Spec: &api.SecretSpec{Data: []byte("pw")}}},
		configs: map[string]*api.Config{"c": {Id: "c", Spec: &api.ConfigSpec{Data: []byte("cfg")}}},
	}
	c, err := e.ex.Controller(task, deps)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	// A reboot between Prepare and Start empties the tmpfs.
	if err := teardownDeps(e.cfg.secretsDir(task.Id)); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := c.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if logs := e.logs(c.(*controller)); logs != "/run/secrets/x 444\n/cfg 444\n" {
		t.Errorf("logs = %q", logs)
	}
	if err := c.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(t, e.dataDir); len(m) != 0 {
		t.Errorf("mounts left by Remove: %v", m)
	}
}
