package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/test/images"
)

// needle is one encoding of a secret payload that must not turn up.
type needle struct {
	enc string
	b   []byte
}

// secretNeedles are the payload as raw bytes, hex and base64 (at the three
// alignments it can take inside a longer base64 text, edges trimmed).
func secretNeedles(payload []byte) []needle {
	out := []needle{{"raw", payload}, {"hex", []byte(hex.EncodeToString(payload))}}
	for k := 0; k < 3; k++ {
		e := base64.StdEncoding.EncodeToString(append(make([]byte, k), payload...))
		trim := 0
		if k > 0 {
			trim = 4
		}
		out = append(out, needle{fmt.Sprintf("base64/%d", k), []byte(e[trim : len(e)-4])})
	}
	return out
}

// mountPoints maps every mount point this process sees to its filesystem
// type.
func mountPoints() (map[string]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		typ := ""
		for i, x := range f {
			if x == "-" && i+1 < len(f) {
				typ = f[i+1]
				break
			}
		}
		out[unescapeOctal(f[4])] = typ
	}
	return out, sc.Err()
}

func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// leakScan is the result of scanning a tree for needles.
type leakScan struct {
	files   int
	bytes   int64
	skipped []string // mount points not entered
	hits    []string
}

// scanTree reads every regular file under root, except below mount points
// (the tasks' secret tmpfs, network namespace bind mounts), and records
// which files hold any needle.
func scanTree(root string, needles []needle) (leakScan, error) {
	var r leakScan
	mounts, err := mountPoints()
	if err != nil {
		return r, err
	}
	root, err = filepath.Abs(root)
	if err != nil {
		return r, err
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if typ, ok := mounts[p]; ok && p != root {
			r.skipped = append(r.skipped, p+" ("+typ+")")
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return fmt.Errorf("read %s: %w", p, err)
		}
		r.files++
		r.bytes += int64(len(b))
		r.hits = append(r.hits, scanText(p, b, needles)...)
		return nil
	})
	return r, err
}

// scanText records which needles a text holds.
func scanText(what string, text []byte, needles []needle) []string {
	var hits []string
	for _, n := range needles {
		if bytes.Contains(text, n.b) {
			hits = append(hits, fmt.Sprintf("%s (%s)", what, n.enc))
		}
	}
	return hits
}

// randomPayload is a recognisable secret of random bytes.
func randomPayload(t *testing.T, prefix string) []byte {
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	return []byte(prefix + hex.EncodeToString(raw))
}

// shoalStdin runs the CLI against d with stdin.
func (d *daemon) shoalStdin(stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.cli, append([]string{"-H", "unix://" + d.socket()}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ctrExec runs argv in a running container of d's containerd namespace.
func (d *daemon) ctrExec(container string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id := fmt.Sprintf("t%d", time.Now().UnixNano()%1e9)
	out, err := exec.CommandContext(ctx, "ctr", append([]string{"-n", d.ns, "tasks", "exec", "--exec-id", id, container}, argv...)...).CombinedOutput()
	return string(out), err
}

// TestSecretOnOneNode: a secret with a random payload (`secret create NAME
// -`, shoald at --log-level debug) used by a busybox service. The container
// reads the payload at /run/secrets/NAME (mode 0400) and logs its sha256;
// the payload (raw, hex or base64) is in no file under the data dir outside
// the task's tmpfs, in particular not in the raft log (raft/raft.db, read
// whole), nor in the shoald log, the container log (file and `service
// logs`) or `secret inspect`. After `service rm` the tmpfs is unmounted,
// the data dir is still clean, and the secret can be removed.
func TestSecretOnOneNode(t *testing.T) {
	testutil.RequiresContainerd(t)
	reg := images.StartRegistry(t)
	busybox := images.PushTest(t, reg, images.Busybox)
	d := newDaemon(t, "--insecure-registry", reg, "--log-level", "debug")
	d.start()
	d.mustShoal("swarm", "init", "--advertise-addr", d.addr)
	data := filepath.Join(d.dir, "data")

	payload := randomPayload(t, "shoal-e2e-secret-")
	sum := sha256.Sum256(payload)
	digest := hex.EncodeToString(sum[:])
	needles := secretNeedles(payload)
	const name = "e2esecret"
	if out, err := d.shoalStdin(payload, "secret", "create", name, "-"); err != nil {
		t.Fatalf("secret create: %v\n%s", err, out)
	}
	d.mustShoal("service", "create", "-d", "--name", "reader", "--secret", "source="+name+",target="+name+",mode=0400",
		busybox, "sh", "-c", "sha256sum /run/secrets/"+name+"; exec sleep 3600")
	waitRunning(t, d, 1, 60*time.Second)
	task := runningContainers(t, d.ns)[0]

	got, err := d.ctrExec(task, "cat", "/run/secrets/"+name)
	if err != nil {
		t.Fatalf("ctr exec cat: %v\n%s", err, got)
	}
	if got != string(payload) {
		t.Fatalf("the container reads %d bytes at /run/secrets/%s that differ from the secret's %d", len(got), name, len(payload))
	}
	if mode, err := d.ctrExec(task, "stat", "-c", "%a %u", "/run/secrets/"+name); err != nil || strings.TrimSpace(mode) != "400 0" {
		t.Errorf("stat /run/secrets/%s in the container: %q (%v), want mode 400 owned by 0", name, mode, err)
	}
	var logs string
	waitFor(t, 30*time.Second, "the digest in service logs", func() error {
		out, err := d.shoal("service", "logs", "reader")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if logs = out; !strings.Contains(logs, digest) {
			return fmt.Errorf("service logs reader lacks the digest %s:\n%s", digest, logs)
		}
		return nil
	})

	// The secret's tmpfs is where the payload lives: it must be mounted
	// under the data dir while the task runs.
	mounts, err := mountPoints()
	if err != nil {
		t.Fatal(err)
	}
	tmpfs, tmpfsHits := 0, 0
	for mp, typ := range mounts {
		if typ == "tmpfs" && strings.HasPrefix(mp, data+"/") {
			tmpfs++
			// Positive control of the scan: the tmpfs holds the payload.
			r, err := scanTree(mp, needles)
			if err != nil {
				t.Errorf("scanning %s: %v", mp, err)
			}
			tmpfsHits += len(r.hits)
		}
	}
	if tmpfs == 0 {
		t.Errorf("no tmpfs under %s while a task with a secret runs", data)
	} else if tmpfsHits == 0 {
		t.Errorf("the scan finds no payload in the task's tmpfs either: it proves nothing")
	}

	check := func(when string) {
		t.Helper()
		hits := scanText("service logs reader", []byte(logs), needles)
		hits = append(hits, scanText("shoald log", []byte(d.logs()), needles)...)
		if out, err := d.shoal("secret", "inspect", name); err == nil {
			hits = append(hits, scanText("secret inspect", []byte(out), needles)...)
		}
		raft, err := os.ReadFile(filepath.Join(data, "raft", "raft.db"))
		if err != nil {
			t.Fatalf("read the raft log: %v", err)
		}
		hits = append(hits, scanText("raft/raft.db", raft, needles)...)
		r, err := scanTree(d.dir, needles)
		if err != nil {
			t.Errorf("%s: scanning %s: %v", when, d.dir, err)
		}
		hits = append(hits, r.hits...)
		logFiles, _ := filepath.Glob(filepath.Join(data, "executor", "logs", "*"))
		t.Logf("%s: %d files (%d bytes) under %s scanned (raft.db %d bytes, container logs %v); mount points not entered: %v",
			when, r.files, r.bytes, d.dir, len(raft), logFiles, r.skipped)
		for _, h := range hits {
			t.Errorf("%s: the secret's payload is in %s", when, h)
		}
	}
	check("task running")

	out, err := d.shoal("secret", "rm", name)
	if err == nil || !strings.Contains(out, "in use by the following service: reader") {
		t.Errorf("secret rm of a secret in use: %v\n%s", err, out)
	}
	d.mustShoal("service", "rm", "reader")
	waitFor(t, 30*time.Second, "the task's container and tmpfs to go", func() error {
		if n := containerCount(t, d.ns); n != 0 {
			return fmt.Errorf("%d containers", n)
		}
		m, err := mountPoints()
		if err != nil {
			return err
		}
		for mp, typ := range m {
			if typ == "tmpfs" && strings.HasPrefix(mp, data+"/") {
				return fmt.Errorf("tmpfs still mounted: %s", mp)
			}
		}
		return nil
	})
	check("after service rm")
	if out := d.mustShoal("secret", "rm", name); strings.TrimSpace(out) != name {
		t.Errorf("secret rm printed %q, want %q", out, name)
	}
}
