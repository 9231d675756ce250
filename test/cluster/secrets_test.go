package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/test/images"
	"github.com/shoal-project/shoal/test/lab"
)

// needle is one encoding of a secret payload that must not turn up.
type needle struct {
	enc string
	b   []byte
}

// secretNeedles are the payload as raw bytes, hex and base64 (at the three
// alignments it can take inside a longer base64 text, edges trimmed): the
// forms a leak through a file, a log line or a JSON dump would take.
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

// mountPoints maps every mount point of the machine (as this process sees
// it; lab hosts share the root mount namespace) to its filesystem type.
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
				return nil // removed while walking
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
		for _, n := range needles {
			if bytes.Contains(b, n.b) {
				r.hits = append(r.hits, fmt.Sprintf("%s (%s)", p, n.enc))
			}
		}
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

// memoryHolds reports whether the readable memory of process pid holds
// data, reading /proc/pid/mem region by region (root only). It returns how
// many bytes it read.
func memoryHolds(pid int, data []byte) (bool, int64, error) {
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return false, 0, err
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return false, 0, err
	}
	defer mem.Close()
	const chunk = 4 << 20
	buf := make([]byte, chunk+len(data))
	var read int64
	for _, line := range strings.Split(string(maps), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[1][0] != 'r' {
			continue
		}
		if len(f) >= 6 && (f[5] == "[vvar]" || f[5] == "[vsyscall]" || f[5] == "[vvar_vclock]") {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		for off := start; off < end; off += chunk {
			n := min(uint64(len(buf)), end-off)
			got, err := mem.ReadAt(buf[:n], int64(off))
			if got > 0 {
				read += int64(got)
				if bytes.Contains(buf[:got], data) {
					return true, read, nil
				}
			}
			if err != nil && err != io.EOF {
				break // unreadable region
			}
		}
	}
	return false, read, nil
}

// shoalStdin runs the CLI on h with stdin.
func shoalStdin(t *testing.T, h *lab.Host, stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, lab.BuildShoal(t), append([]string{"-H", h.SocketURL()}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ctrExec runs argv in a running container of h's containerd namespace.
func ctrExec(h *lab.Host, container string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id := fmt.Sprintf("t%d", time.Now().UnixNano()%1e9)
	out, err := exec.CommandContext(ctx, "ctr", append([]string{"-n", h.ContainerdNamespace, "tasks", "exec", "--exec-id", id, container}, argv...)...).CombinedOutput()
	return string(out), err
}

// TestSecretReachesOnlyItsNode: 3 managers + 2 workers (A, B), every shoald
// at --log-level debug. A secret with a random payload is created with
// `secret create NAME -` and used by a service constrained to A
// (--secret source=NAME,target=NAME,mode=0400). The container on A reads the
// payload at /run/secrets/NAME, mode 0400, and logs its sha256. The payload
// (raw, hex or base64) is in no file under any host's data dir (mount points
// such as the task's tmpfs are not entered), in no host's shoald log, in no
// container log and not in `secret inspect`. Worker B never receives it:
// nothing of it in B's data dir or log, no tmpfs under B's data dir, and not
// in the memory of B's shoald (read through /proc/PID/mem; the same scan
// finds it in A's shoald, which holds it for its task). `secret rm` of the
// secret in use fails naming the service; once the service is removed, A's
// tmpfs is gone, the data dirs are still clean, and `secret rm` works.
func TestSecretReachesOnlyItsNode(t *testing.T) {
	s := newSwarm(t, spec{managers: 3, workers: 2, registry: true, args: []string{"--log-level", "debug"}})
	h1 := s.managers[0]
	a, b := s.workers[0], s.workers[1]
	ids := s.nodeIDs(h1)

	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	payload := []byte("shoal-lab-secret-" + hex.EncodeToString(raw))
	sum := sha256.Sum256(payload)
	digest := hex.EncodeToString(sum[:])
	needles := secretNeedles(payload)
	const name = "labsecret"

	if out, err := shoalStdin(t, h1, payload, "secret", "create", name, "-"); err != nil {
		t.Fatalf("secret create: %v\n%s", err, out)
	}
	s.sh(h1, "service", "create", "-d", "--name", "reader", "--constraint", "node.hostname=="+a.Name,
		"--secret", "source="+name+",target="+name+",mode=0400", s.image(images.Busybox),
		"sh", "-c", "sha256sum /run/secrets/"+name+"; exec sleep 3600")

	var task *api.Task
	lab.WaitFor(t, 90*time.Second, func() error {
		tasks, err := s.tasks(h1, "reader")
		if err != nil {
			return err
		}
		for _, tk := range tasks {
			if tk.GetStatus().GetState() == api.TaskState_RUNNING {
				task = tk
				return nil
			}
		}
		return fmt.Errorf("no RUNNING task yet:\n%s", describeTasks(tasks))
	})
	if task.GetNodeId() != ids[a.Name] {
		t.Fatalf("the task runs on node %s, want %s (%s)", task.GetNodeId(), a.Name, ids[a.Name])
	}

	// The container reads the payload, with the mode asked for.
	got, err := ctrExec(a, task.GetId(), "cat", "/run/secrets/"+name)
	if err != nil {
		t.Fatalf("ctr exec cat on %s: %v\n%s", a.Name, err, got)
	}
	if got != string(payload) {
		t.Fatalf("the container reads %d bytes at /run/secrets/%s that differ from the secret's %d", len(got), name, len(payload))
	}
	if mode, err := ctrExec(a, task.GetId(), "stat", "-c", "%a %u", "/run/secrets/"+name); err != nil || strings.TrimSpace(mode) != "400 0" {
		t.Errorf("stat /run/secrets/%s in the container: %q (%v), want mode 400 owned by 0", name, mode, err)
	}

	// The container logs the digest, never the payload.
	var logs string
	lab.WaitFor(t, 30*time.Second, func() error {
		out, err := try(h1, 10*time.Second, "service", "logs", "reader")
		if err != nil {
			return err
		}
		if logs = out; !strings.Contains(logs, digest) {
			return fmt.Errorf("service logs reader lacks the digest %s:\n%s", digest, logs)
		}
		return nil
	})

	// Where the payload must not be, while the task runs.
	check := func(when string) {
		t.Helper()
		var hits []string
		hits = append(hits, scanText("service logs reader", []byte(logs), needles)...)
		if out, err := try(h1, 10*time.Second, "secret", "inspect", name); err != nil {
			t.Errorf("secret inspect: %v", err)
		} else {
			hits = append(hits, scanText("secret inspect", []byte(out), needles)...)
		}
		for _, h := range s.l.Hosts {
			r, err := scanTree(h.DataDir, needles)
			if err != nil {
				t.Errorf("%s: scanning %s: %v", when, h.DataDir, err)
			}
			hits = append(hits, r.hits...)
			t.Logf("%s: %s: %d files (%d bytes) under %s scanned; mount points not entered: %v", when, h.Name, r.files, r.bytes, h.DataDir, r.skipped)
			hits = append(hits, scanText(h.Name+" shoald log "+h.LogPath, []byte(h.Logs()), needles)...)
		}
		for _, hit := range hits {
			t.Errorf("%s: the secret's payload is in %s", when, hit)
		}
	}
	check("task running")

	// Positive control of the file scan: the task's tmpfs on A, which the
	// scans above do not enter, holds the payload.
	tmpfsHits := 0
	if m, err := mountPoints(); err == nil {
		for mp, typ := range m {
			if typ == "tmpfs" && strings.HasPrefix(mp, a.DataDir+"/") {
				r, err := scanTree(mp, needles)
				if err != nil {
					t.Errorf("scanning %s: %v", mp, err)
				}
				tmpfsHits += len(r.hits)
			}
		}
	}
	if tmpfsHits == 0 {
		t.Errorf("the scan finds no payload in A's secret tmpfs either: it proves nothing")
	}

	// Worker B: no tmpfs, nothing in memory. A: the same scan finds it.
	mounts, err := mountPoints()
	if err != nil {
		t.Fatal(err)
	}
	for mp, typ := range mounts {
		if typ == "tmpfs" && strings.HasPrefix(mp, b.DataDir+"/") {
			t.Errorf("a tmpfs is mounted under worker B's data dir: %s", mp)
		}
	}
	inA, readA, err := memoryHolds(a.PID(), payload)
	if err != nil {
		t.Fatalf("reading the memory of %s's shoald: %v", a.Name, err)
	}
	inB, readB, err := memoryHolds(b.PID(), payload)
	if err != nil {
		t.Fatalf("reading the memory of %s's shoald: %v", b.Name, err)
	}
	t.Logf("memory of shoald on A (%s): %d bytes read, payload found %v; on B (%s): %d bytes read, payload found %v", a.Name, readA, inA, b.Name, readB, inB)
	if inB {
		t.Errorf("worker B (%s) holds the secret's payload in its shoald's memory, though no task of it uses the secret", b.Name)
	}
	if !inA {
		t.Logf("positive control: the payload was not found in A's shoald memory either; the memory check of B proves nothing")
	}

	// What the agents say they hold: A exactly this secret, B nothing.
	secID := strings.TrimSpace(s.sh(s.managers[0], "secret", "inspect", "--format", "{{.ID}}", name))
	infoA, errA := s.info(a)
	infoB, errB := s.info(b)
	if errA != nil || errB != nil {
		t.Fatalf("info: %v %v", errA, errB)
	}
	if got := infoA.GetHeldSecrets(); len(got) != 1 || got[0] != secID {
		t.Errorf("worker A holds secrets %v, want exactly [%s]", got, secID)
	}
	if got := infoB.GetHeldSecrets(); len(got) != 0 {
		t.Errorf("worker B holds secrets %v though no task of it uses one", got)
	}

	// In use: refused, naming the service.
	out, err := try(h1, 10*time.Second, "secret", "rm", name)
	if err == nil {
		t.Fatalf("secret rm of a secret in use succeeded: %s", out)
	}
	if msg := err.Error(); !strings.Contains(msg, "in use by the following service: reader") || !strings.Contains(msg, name) {
		t.Errorf("secret rm of a secret in use: %v; want a message naming the secret and the service reader", err)
	} else {
		t.Logf("secret rm refused: %v", err)
	}

	// Service removed: the tmpfs goes, nothing is left behind, rm works.
	s.sh(h1, "service", "rm", "reader")
	lab.WaitFor(t, 30*time.Second, func() error {
		ids, err := runningContainers(a)
		if err != nil {
			return err
		}
		if len(ids) > 0 {
			return fmt.Errorf("%s still runs %v", a.Name, ids)
		}
		m, err := mountPoints()
		if err != nil {
			return err
		}
		for mp, typ := range m {
			if typ == "tmpfs" && strings.HasPrefix(mp, a.DataDir+"/") {
				return fmt.Errorf("tmpfs still mounted on %s: %s", a.Name, mp)
			}
		}
		return nil
	})
	check("after service rm")
	if out, err := try(h1, 10*time.Second, "secret", "rm", name); err != nil {
		t.Fatalf("secret rm after the service is gone: %v", err)
	} else if strings.TrimSpace(out) != name {
		t.Errorf("secret rm printed %q, want %q", out, name)
	}
	if ls := s.sh(h1, "secret", "ls", "--format", "{{.Name}}"); strings.Contains(ls, name) {
		t.Errorf("secret ls still lists %s:\n%s", name, ls)
	}
}
