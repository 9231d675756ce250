package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/test/images"
)

var unlockKeyRE = regexp.MustCompile(`[A-Z]+KEY-1-[A-Za-z0-9+/=_-]+`)

// lockedMsg is what a locked manager answers to everything but info and
// unlock.
const lockedMsg = `Swarm is encrypted and needs to be unlocked before it can be used. Please use "shoal swarm unlock" to unlock it.`

// info is the daemon's LocalNode.Info.
func (d *daemon) info() (*api.InfoResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return api.NewLocalNodeClient(d.client()).Info(ctx, &api.InfoRequest{})
}

func unlockKeyIn(t *testing.T, out string) string {
	t.Helper()
	k := unlockKeyRE.FindString(out)
	if k == "" {
		t.Fatalf("no unlock key (SHKEY-1-...) in:\n%s", out)
	}
	return k
}

func fingerprint(t *testing.T, key string) string {
	t.Helper()
	raw, err := pki.ParseUnlockKey(key)
	if err != nil {
		t.Fatalf("unlock key %q: %v", key, err)
	}
	return pki.UnlockKeyFingerprint(raw)
}

func randomMarker(t *testing.T) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "mk" + hex.EncodeToString(b)
}

// TestAutolockMarkerNeverOnDisk: service labels (in the raft log's entries
// and, with a snapshot interval of 20 entries, in its snapshots) are in no
// file under the data directory, with autolock off and on, before and after
// a kill -9 and restart; the node's TLS key is not on disk in clear either.
// `service inspect` shows the label: it is in the store, so the scan has
// something to miss.
func TestAutolockMarkerNeverOnDisk(t *testing.T) {
	testutil.RequiresContainerd(t)
	for _, autolock := range []bool{false, true} {
		t.Run(fmt.Sprintf("autolock=%v", autolock), func(t *testing.T) {
			d := newDaemon(t, "--log-level", "debug")
			d.start()
			args := []string{"swarm", "init", "--advertise-addr", d.addr, "--snapshot-interval", "20"}
			if autolock {
				args = append(args, "--autolock")
			}
			out := d.mustShoal(args...)
			key := ""
			if autolock {
				key = unlockKeyIn(t, out)
			}
			data := filepath.Join(d.dir, "data")
			marker := randomMarker(t)
			create := func(from, to int) {
				for i := from; i < to; i++ {
					d.mustShoal("service", "create", "-d", "--name", fmt.Sprintf("s%d", i), "--replicas", "1",
						"--constraint", "node.hostname==nowhere", "--label", "m="+marker, "127.0.0.1:5000/none:1")
				}
			}
			create(0, 15)
			waitFor(t, 20*time.Second, "a raft snapshot", func() error {
				if !strings.Contains(d.logs(), "snapshot saved") {
					return fmt.Errorf("no snapshot yet")
				}
				return nil
			})
			if got := d.mustShoal("service", "inspect", "--format", "{{json .Spec.Labels}}", "s3"); !strings.Contains(got, marker) {
				t.Fatalf("service inspect does not show the label: %s", got)
			}
			scan := func(when string) {
				t.Helper()
				r, err := scanTree(data, append(secretNeedles([]byte(marker)),
					needle{"private key in clear", []byte("BEGIN PRIVATE KEY")}, needle{"EC private key in clear", []byte("BEGIN EC PRIVATE KEY")}))
				if err != nil {
					t.Fatal(err)
				}
				if r.files < 5 {
					t.Fatalf("%s: only %d files scanned under %s", when, r.files, data)
				}
				for _, h := range r.hits {
					t.Errorf("%s: found in clear: %s", when, h)
				}
				files := r.files
				t.Logf("%s: %d files under %s scanned, no marker", when, files, data)
			}
			scan("running")

			d.kill()
			scan("killed")
			d.start()
			if autolock {
				if out, err := d.shoalStdin([]byte(key+"\n"), "swarm", "unlock"); err != nil {
					t.Fatalf("unlock: %v\n%s", err, out)
				}
			}
			waitFor(t, 20*time.Second, "service ls after restart", func() error {
				_, err := d.shoal("service", "ls")
				return err
			})
			create(15, 30)
			waitFor(t, 20*time.Second, "a second snapshot", func() error {
				if strings.Count(d.logs(), "snapshot saved") < 2 {
					return fmt.Errorf("no second snapshot yet")
				}
				return nil
			})
			scan("after restart")
		})
	}
}

// TestAutolockRestartLockedUntilUnlocked: a manager of a swarm initialised
// with --autolock, killed with -9 and restarted, serves nothing but info
// and unlock: service ls and node ls get Docker's locked message, info
// says locked, a wrong key (well-formed or not) is refused and changes
// nothing, its container keeps running all along; the right key from stdin
// unlocks it and the cluster serves again within 20 s, with the same task
// still running (the agent re-attached, nothing was duplicated). Locked
// again, it leaves the swarm only with --force (the lost-key way out).
func TestAutolockRestartLockedUntilUnlocked(t *testing.T) {
	testutil.RequiresContainerd(t)
	reg := images.StartRegistry(t)
	busybox := images.PushTest(t, reg, images.Busybox)
	d := newDaemon(t, "--insecure-registry", reg)
	d.start()
	key := unlockKeyIn(t, d.mustShoal("swarm", "init", "--autolock", "--advertise-addr", d.addr))
	if got := strings.TrimSpace(d.mustShoal("swarm", "unlock-key", "-q")); got != key {
		t.Fatalf("unlock-key -q = %q, init printed %q", got, key)
	}
	d.mustShoal("service", "create", "-d", "--name", "sleeper", busybox, "sleep", "3600")
	waitRunning(t, d, 1, 60*time.Second)
	before := runningContainers(t, d.ns)
	if i, err := d.info(); err != nil || i.GetUnlockKeyFingerprint() != fingerprint(t, key) {
		t.Fatalf("info: unlock key fingerprint %q (%v), want %q", i.GetUnlockKeyFingerprint(), err, fingerprint(t, key))
	}

	d.kill()
	d.start()
	for _, args := range [][]string{{"service", "ls"}, {"node", "ls"}, {"swarm", "join-token", "worker"}} {
		out, err := d.shoal(args...)
		if err == nil || !strings.Contains(out, lockedMsg) {
			t.Fatalf("%s on a locked manager: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if out := d.mustShoal("info"); !strings.Contains(out, " Swarm: locked") {
		t.Fatalf("info on a locked manager:\n%s", out)
	}
	if out, err := d.shoal("swarm", "init"); err == nil || !strings.Contains(out, "already part of a swarm") {
		t.Fatalf("init on a locked manager: %v\n%s", err, out)
	}
	other, _ := pki.GenerateUnlockKey()
	for _, wrong := range []string{"SWMKEY-1-wrongwrongwrong", pki.FormatUnlockKey(other)} {
		out, err := d.shoalStdin([]byte(wrong+"\n"), "swarm", "unlock")
		if err == nil || !strings.Contains(out, "invalid key") {
			t.Fatalf("unlock with a wrong key %q: %v\n%s", wrong, err, out)
		}
	}
	if i, err := d.info(); err != nil || i.GetState() != api.InfoResponse_LOCKED {
		t.Fatalf("after wrong keys: state %v (%v), want LOCKED", i.GetState(), err)
	}
	if got := runningContainers(t, d.ns); strings.Join(got, ",") != strings.Join(before, ",") {
		t.Fatalf("while locked, running containers changed: %v -> %v", before, got)
	}

	unlocked := time.Now()
	if out, err := d.shoalStdin([]byte(key+"\n"), "swarm", "unlock"); err != nil {
		t.Fatalf("unlock with the right key: %v\n%s", err, out)
	}
	waitFor(t, 20*time.Second, "service ls after unlock", func() error {
		out, err := d.shoal("service", "ls")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if !strings.Contains(out, "sleeper") {
			return fmt.Errorf("no sleeper in:\n%s", out)
		}
		return nil
	})
	t.Logf("service ls answered %v after unlock", time.Since(unlocked).Round(time.Millisecond))
	waitFor(t, 30*time.Second, "the task RUNNING again in service ps", func() error {
		out, err := d.shoal("service", "ps", "-q", "--filter", "desired-state=running", "sleeper")
		if err != nil {
			return err
		}
		if ids := strings.Fields(out); len(ids) != 1 || !strings.HasPrefix(before[0], ids[0]) {
			return fmt.Errorf("service ps -q: %v, want the task of container %s", ids, before[0])
		}
		return nil
	})
	if got := runningContainers(t, d.ns); strings.Join(got, ",") != strings.Join(before, ",") {
		t.Fatalf("after unlock, running containers %v, want the same %v", got, before)
	}
	if out, err := d.shoalStdin([]byte(key+"\n"), "swarm", "unlock"); err == nil || !strings.Contains(out, "swarm is not locked") {
		t.Fatalf("unlock of an unlocked manager: %v\n%s", err, out)
	}

	// The way out when the key is lost: leave --force from the locked state
	// (plain leave is refused with the way out), which removes the node's
	// containers and swarm state.
	d.kill()
	d.start()
	if out, err := d.shoal("swarm", "leave"); err == nil || !strings.Contains(out, "--force") {
		t.Fatalf("leave of a locked manager without --force: %v\n%s", err, out)
	}
	d.mustShoal("swarm", "leave", "--force")
	if i, err := d.info(); err != nil || i.GetState() != api.InfoResponse_INACTIVE {
		t.Fatalf("after leave --force: state %v (%v), want INACTIVE", i.GetState(), err)
	}
	if got := runningContainers(t, d.ns); len(got) != 0 {
		t.Fatalf("containers still running after leave --force: %v", got)
	}
}

// TestAutolockRotationThreeManagers: three managers on loopback. Autolock
// is turned on after the second joined; the third joins later. Each wraps
// its data key with the current unlock key; after a rotation each re-wraps
// with the new one. All three are killed and restarted: each is locked,
// refuses the old key and opens with the new one, and the swarm serves
// again. A demoted manager is not locked after a restart; with autolock
// off, a restarted manager is not locked.
func TestAutolockRotationThreeManagers(t *testing.T) {
	testutil.RequiresContainerd(t)
	m := []*daemon{newDaemon(t), newDaemon(t), newDaemon(t)}
	for _, d := range m {
		d.start()
	}
	m[0].mustShoal("swarm", "init", "--advertise-addr", m[0].addr)
	token := strings.TrimSpace(m[0].mustShoal("swarm", "join-token", "-q", "manager"))
	m[1].mustShoal("swarm", "join", "--token", token, "--advertise-addr", m[1].addr, m[0].addr)
	k1 := unlockKeyIn(t, m[0].mustShoal("swarm", "update", "--autolock=true"))
	m[2].mustShoal("swarm", "join", "--token", token, "--advertise-addr", m[2].addr, m[0].addr)

	wrappedWith := func(fp string, who []*daemon) {
		t.Helper()
		for i, d := range who {
			waitFor(t, 20*time.Second, fmt.Sprintf("manager %d to wrap its data key with unlock key %q", i+1, fp), func() error {
				info, err := d.info()
				if err != nil {
					return err
				}
				if got := info.GetUnlockKeyFingerprint(); got != fp {
					return fmt.Errorf("wrapped with %q", got)
				}
				return nil
			})
		}
	}
	wrappedWith(fingerprint(t, k1), m)

	rot := m[1].mustShoal("swarm", "unlock-key", "--rotate")
	if !strings.Contains(rot, "Successfully rotated manager unlock key.") {
		t.Fatalf("unlock-key --rotate:\n%s", rot)
	}
	k2 := unlockKeyIn(t, rot)
	if k2 == k1 {
		t.Fatal("rotation kept the key")
	}
	wrappedWith(fingerprint(t, k2), m)

	for _, d := range m {
		d.kill()
	}
	for _, d := range m {
		d.start()
	}
	for i, d := range m {
		if out, err := d.shoal("service", "ls"); err == nil || !strings.Contains(out, lockedMsg) {
			t.Fatalf("manager %d after restart: %v\n%s", i+1, err, out)
		}
		if out, err := d.shoalStdin([]byte(k1+"\n"), "swarm", "unlock"); err == nil || !strings.Contains(out, "invalid key") {
			t.Fatalf("manager %d accepted the key from before the rotation: %v\n%s", i+1, err, out)
		}
	}
	for i, d := range m {
		if out, err := d.shoalStdin([]byte(k2+"\n"), "swarm", "unlock"); err != nil {
			t.Fatalf("manager %d refused the current key: %v\n%s", i+1, err, out)
		}
	}
	for i, d := range m {
		waitFor(t, 30*time.Second, fmt.Sprintf("node ls on manager %d", i+1), func() error {
			out, err := d.shoal("node", "ls")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			if strings.Count(out, "Leader") != 1 || strings.Count(out, "Reachable") != 2 {
				return fmt.Errorf("node ls:\n%s", out)
			}
			return nil
		})
	}

	// A demoted manager is a worker: never locked, its data key wrapped by
	// its own key again, and a restart does not lock it.
	i3, err := m[2].info()
	if err != nil {
		t.Fatal(err)
	}
	m[0].mustShoal("node", "demote", i3.GetNodeId())
	waitFor(t, 60*time.Second, "manager 3 to run as a worker with its own key", func() error {
		info, err := m[2].info()
		if err != nil {
			return err
		}
		if info.GetControlAvailable() || info.GetUnlockKeyFingerprint() != "" {
			return fmt.Errorf("manager %v, wrapped with %q", info.GetControlAvailable(), info.GetUnlockKeyFingerprint())
		}
		return nil
	})
	m[2].kill()
	m[2].start()
	if info, err := m[2].info(); err != nil || info.GetState() != api.InfoResponse_ACTIVE {
		t.Fatalf("the demoted node after a restart: state %v (%v), want ACTIVE", info.GetState(), err)
	}

	// Autolock off: every manager re-wraps with its own key.
	out := m[0].mustShoal("swarm", "update", "--autolock=false")
	if unlockKeyRE.MatchString(out) {
		t.Fatalf("update --autolock=false printed a key:\n%s", out)
	}
	wrappedWith("", m[:2])
	if out, err := m[0].shoal("swarm", "unlock-key"); err == nil || !strings.Contains(out, "no unlock key is set") {
		t.Fatalf("unlock-key with autolock off: %v\n%s", err, out)
	}
	m[1].kill()
	m[1].start()
	waitFor(t, 20*time.Second, "service ls on a restarted manager without autolock", func() error {
		out, err := m[1].shoal("service", "ls")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
}
