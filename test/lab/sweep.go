package lab

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Every lab records its owner (pid and process start time) in root()/<prefix>/owner before it creates
// anything, and removes that directory last. A lab whose owner is not alive is a leftover.

const (
	ownerFile = "owner"
	keptFile  = "kept" // SHOAL_LAB_KEEP: the directory stays after cleanup and sweeps
)

// root is where labs keep their directories and BuildShoald its binaries.
func root() string { return filepath.Join(os.TempDir(), "shoal-labtest") }

// makeOwned creates root()/name with its owner file in one step (a rename), so that a Sweep never sees the
// directory without its owner. It fails with an error satisfying errors.Is(err, os.ErrExist) if name is
// taken.
func makeOwned(name, note string) (string, error) {
	if err := os.MkdirAll(root(), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(root(), ".new-")
	if err != nil {
		return "", err
	}
	pid := os.Getpid()
	err = os.WriteFile(filepath.Join(tmp, ownerFile), fmt.Appendf(nil, "%d %s %s\n", pid, procStartTime(pid), note), 0o644)
	dir := filepath.Join(root(), name)
	if err == nil {
		err = os.Rename(tmp, dir)
		if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
			err = fmt.Errorf("%s: %w", dir, os.ErrExist)
		}
	}
	if err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	return dir, nil
}

// owner returns whether the process that wrote dir's owner file is alive, and the note it wrote.
func owner(dir string) (alive bool, note string) {
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return false, ""
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return false, ""
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return false, ""
	}
	if len(f) > 2 {
		note = f[2]
	}
	st := procStartTime(pid)
	return st != "" && st == f[1] && procState(pid) != "Z", note
}

func procStartTime(pid int) string {
	f := procStat(pid)
	if len(f) < 20 {
		return ""
	}
	return f[19] // field 22 of /proc/pid/stat
}

// Sweep removes what earlier runs of labs named base (Config.Name) left behind when their process died
// without cleaning up (a timeout panic, SIGKILL, a crash): processes in their namespaces, containerd
// namespaces, nft tables, namespaces, veths, bridges and directories. Labs whose owner process is alive,
// in this process or another, are left alone. It also removes binaries of dead BuildShoald callers.
// New calls it.
func Sweep(base string) error {
	if !baseName.MatchString(base) {
		return fmt.Errorf("lab: Sweep: bad base name %q", base)
	}
	re := regexp.MustCompile(`^(` + regexp.QuoteMeta(base) + `[0-9a-f]{4})(-.*)?$`)
	found := map[string]bool{}
	add := func(names []string, trim string) {
		for _, n := range names {
			if m := re.FindStringSubmatch(strings.TrimPrefix(n, trim)); m != nil {
				found[m[1]] = true
			}
		}
	}
	add(dirNames("/run/netns"), "")
	add(dirNames("/sys/class/net"), "")
	add(dirNames(root()), "")
	add(ctrNamespaces(""), "lab-")
	var errs []error
	for p := range found {
		if alive, _ := owner(filepath.Join(root(), p)); alive {
			continue
		}
		errs = append(errs, destroy(p, ""))
	}
	for _, d := range dirNames(root()) {
		path := filepath.Join(root(), d)
		switch {
		case strings.HasPrefix(d, "bin-"):
			if alive, _ := owner(path); !alive {
				errs = append(errs, os.RemoveAll(path))
			}
		case strings.HasPrefix(d, ".new-"): // makeOwned interrupted
			if fi, err := os.Stat(path); err == nil && time.Since(fi.ModTime()) > time.Minute {
				errs = append(errs, os.RemoveAll(path))
			}
		}
	}
	return errors.Join(errs...)
}

// destroy removes everything named after lab prefix p. It never fails on what is already gone.
func destroy(p, ctrAddress string) error {
	var errs []error
	nss := matching(dirNames("/run/netns"), p)
	for _, ns := range nss {
		errs = append(errs, killNetnsPids(ns))
	}
	for _, cns := range matching(ctrNamespaces(ctrAddress), "lab-"+p) {
		errs = append(errs, cleanContainerd(ctrAddress, cns))
	}
	for _, ns := range nss {
		// nft tables live in the namespace and go with it.
		if _, err := run("ip", "netns", "del", ns); err != nil && exists("/run/netns/"+ns) {
			errs = append(errs, err)
		}
	}
	for _, link := range matching(dirNames("/sys/class/net"), p) {
		if _, err := run("ip", "link", "del", link); err != nil && exists("/sys/class/net/"+link) {
			errs = append(errs, err)
		}
	}
	dir := filepath.Join(root(), p)
	errs = append(errs, unmountUnder(dir))
	if !exists(filepath.Join(dir, keptFile)) {
		errs = append(errs, os.RemoveAll(dir))
	}
	return errors.Join(errs...)
}

// leftovers lists what of lab prefix p still exists.
func leftovers(p string) []string {
	var left []string
	for _, n := range matching(dirNames("/run/netns"), p) {
		left = append(left, "netns "+n)
	}
	for _, n := range matching(dirNames("/sys/class/net"), p) {
		left = append(left, "link "+n)
	}
	return left
}

// matching returns the names that are p or start with p-.
func matching(names []string, p string) []string {
	var m []string
	for _, n := range names {
		if n == p || strings.HasPrefix(n, p+"-") {
			m = append(m, n)
		}
	}
	return m
}

func dirNames(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// killNetnsPids SIGKILLs every process in namespace ns and waits until none is left.
func killNetnsPids(ns string) error {
	var pids []string
	err := Poll(killTimeout, func() error {
		out, err := run("ip", "netns", "pids", ns)
		if err != nil {
			if !exists("/run/netns/" + ns) {
				return nil
			}
			return err
		}
		pids = pids[:0]
		for _, f := range strings.Fields(out) {
			pid, _ := strconv.Atoi(f)
			if pid > 0 && procState(pid) != "Z" { // an orphan zombie is dead; pid 1 may never reap it
				pids = append(pids, f)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if len(pids) > 0 {
			return fmt.Errorf("pids %s still in %s", strings.Join(pids, " "), ns)
		}
		return nil
	})
	return err
}

// ctrNamespaces lists containerd's namespaces, or none when ctr or containerd is not there.
func ctrNamespaces(address string) []string {
	if _, err := exec.LookPath("ctr"); err != nil {
		return nil
	}
	out, err := run(ctrArgs(address, "", "namespaces", "ls", "-q")...)
	if err != nil {
		return nil
	}
	return strings.Fields(out)
}

func ctrArgs(address, ns string, args ...string) []string {
	argv := []string{"ctr"}
	if address != "" {
		argv = append(argv, "--address", address)
	}
	if ns != "" {
		argv = append(argv, "-n", ns)
	}
	return append(argv, args...)
}

// cleanContainerd removes every task, container, image, snapshot, blob and lease of containerd namespace
// ns, then the namespace. Rounds repeat until the namespace is gone or 30s have passed. Last it kills the
// namespace's shims that are still running (killShims): containerd loses a task whose clean-up failed
// (its daemon's directory already gone), and its idle shim then outlived every make test (4 a run).
func cleanContainerd(address, ns string) error {
	// After the namespace: a shim whose task containerd lost (its
	// clean-up failed once the daemon's directory was gone) outlives it,
	// idle, with its bundle under the runtime's state directory.
	defer killShims(ns)
	ctr := func(args ...string) (string, error) { return run(ctrArgs(address, ns, args...)...) }
	list := func(args ...string) []string {
		out, _ := ctr(args...)
		return strings.Fields(out)
	}
	return Poll(30*time.Second, func() error {
		for _, id := range list("tasks", "ls", "-q") {
			ctr("tasks", "kill", "-a", "-s", "SIGKILL", id)
			ctr("tasks", "rm", "-f", id)
		}
		if ids := list("containers", "ls", "-q"); len(ids) > 0 {
			ctr(append([]string{"containers", "rm"}, ids...)...)
		}
		if ids := list("images", "ls", "-q"); len(ids) > 0 {
			ctr(append([]string{"images", "rm", "--sync"}, ids...)...)
		}
		for _, sn := range snapshotters(address) {
			removeSnapshots(ctr, sn)
		}
		if ids := list("leases", "ls", "-q"); len(ids) > 0 {
			ctr(append([]string{"leases", "rm"}, ids...)...)
		}
		if ids := list("content", "ls", "-q"); len(ids) > 0 {
			ctr(append([]string{"content", "rm"}, ids...)...)
		}
		_, err := run(ctrArgs(address, "", "namespaces", "rm", ns)...)
		if err != nil && !slices.Contains(ctrNamespaces(address), ns) {
			return nil
		}
		return err
	})
}

// snapshotters lists the snapshotter plugins that loaded.
func snapshotters(address string) []string {
	out, err := run(ctrArgs(address, "", "plugins", "ls")...)
	if err != nil {
		return []string{"overlayfs"}
	}
	var s []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == "io.containerd.snapshotter.v1" && f[len(f)-1] == "ok" {
			s = append(s, f[1])
		}
	}
	return s
}

// removeSnapshots removes a namespace's snapshots children first.
func removeSnapshots(ctr func(...string) (string, error), snapshotter string) {
	for range 64 { // each round removes the leaves; 64 bounds the depth of layer chains
		out, err := ctr("snapshots", "--snapshotter", snapshotter, "ls")
		if err != nil {
			return
		}
		parents := map[string]bool{}
		var keys []string
		for _, line := range strings.Split(out, "\n")[1:] { // KEY PARENT KIND
			f := strings.Fields(line)
			if len(f) == 3 {
				parents[f[1]] = true
			}
			if len(f) >= 2 {
				keys = append(keys, f[0])
			}
		}
		var leaves []string
		for _, k := range keys {
			if !parents[k] {
				leaves = append(leaves, k)
			}
		}
		if len(leaves) == 0 {
			return
		}
		if _, err := ctr(append([]string{"snapshots", "--snapshotter", snapshotter, "rm"}, leaves...)...); err != nil {
			return
		}
	}
}

// freeSubnet picks a 10.251.X.0/24 that no route of the root namespace overlaps and no live lab uses.
// (Lab subnets are private to their namespaces, so two labs sharing one would still not meet; distinct
// ones only keep logs unambiguous.)
func freeSubnet() (netip.Prefix, error) {
	var used []netip.Prefix
	out, err := run("ip", "-4", "route", "show", "table", "all")
	if err != nil {
		return netip.Prefix{}, err
	}
	for _, f := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(f); err == nil {
			used = append(used, p)
		} else if a, err := netip.ParseAddr(f); err == nil && a.Is4() {
			used = append(used, netip.PrefixFrom(a, 32))
		}
	}
	for _, d := range dirNames(root()) {
		if alive, note := owner(filepath.Join(root(), d)); alive {
			if p, err := netip.ParsePrefix(note); err == nil {
				used = append(used, p)
			}
		}
	}
	start := rand.IntN(256)
	for i := range 256 {
		c := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 251, byte((start + i) % 256), 0}), 24)
		if !slices.ContainsFunc(used, c.Overlaps) {
			return c, nil
		}
	}
	return netip.Prefix{}, errors.New("no free 10.251.X.0/24")
}

// killShims kills every containerd-shim-runc-v2 process of containerd
// namespace ns, and any process still under one (a container's), with
// SIGKILL, then their bundles and the namespace's directory under the runc
// v2 runtime's state directory (which containerd leaves, empty, even when
// every shim exited). Best effort: what it cannot kill is left to the next
// sweep.
func killShims(ns string) {
	shims := map[int]bool{}
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := procStat(pid); len(f) > 1 { // state, ppid, ...
			parent[pid], _ = strconv.Atoi(f[1])
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "containerd-shim-runc-v2" {
			continue
		}
		if i := slices.Index(args, "-namespace"); i >= 0 && i+1 < len(args) && args[i+1] == ns {
			shims[pid] = true
		}
	}
	dir := filepath.Join("/run/containerd/io.containerd.runtime.v2.task", ns)
	if len(shims) == 0 {
		os.Remove(dir) // containerd leaves a namespace's directory, empty
		return
	}
	// Children first: a container's processes outlive a killed shim.
	for pid, ppid := range parent {
		if shims[ppid] {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for pid := range shims {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for range 50 {
		alive := false
		for pid := range shims {
			if !zombie(pid) {
				alive = true
			}
		}
		if !alive {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if bundles, err := os.ReadDir(dir); err == nil {
		for _, b := range bundles {
			// Removed only once nothing is mounted there (its rootfs).
			if bundle := filepath.Join(dir, b.Name()); unmountUnder(bundle) == nil {
				os.RemoveAll(bundle)
			}
		}
		os.Remove(dir)
	}
}

// zombie reports whether pid is gone or has exited and waits for its
// parent's wait.
func zombie(pid int) bool {
	st := procState(pid)
	return st == "" || st == "Z"
}
