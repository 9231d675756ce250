package lab

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/shoal-project/shoal/overlay/datapath"
)

// CleanNode removes what one shoald leaves on the machine beyond its
// process: every task, container, image and snapshot of its containerd
// namespace (then the namespace, and any shim of it still running), every
// mount under its data directory
// (the executor bind-mounts task network namespaces there), and, when
// bridge is not empty, that bridge, the veths attached to it and its egress
// NAT table (datapath.EgressTable: a daemon killed before its shutdown
// removed it leaves it behind, with nothing left to use it). Tests that
// run shoald outside a lab call it in t.Cleanup after killing the daemon.
// The network parts are those of the calling thread's namespace.
func CleanNode(ctrAddress, ctrNamespace, dataDir, bridge string) error {
	var errs []error
	if ctrNamespace != "" {
		errs = append(errs, cleanContainerd(ctrAddress, ctrNamespace))
	}
	errs = append(errs, unmountUnder(dataDir))
	if bridge != "" && exists("/sys/class/net/"+bridge) {
		ports, _ := os.ReadDir("/sys/class/net/" + bridge + "/brif")
		for _, p := range ports {
			if _, err := run("ip", "link", "del", p.Name()); err != nil && exists("/sys/class/net/"+p.Name()) {
				errs = append(errs, err)
			}
		}
		if _, err := run("ip", "link", "del", bridge); err != nil && exists("/sys/class/net/"+bridge) {
			errs = append(errs, err)
		}
	}
	if bridge != "" {
		errs = append(errs, datapath.RemoveEgress(bridge))
	}
	return errors.Join(errs...)
}

// unmountUnder lazily unmounts every mount point at or below dir, deepest
// first.
func unmountUnder(dir string) error {
	if dir == "" {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == abs || strings.HasPrefix(mp, abs+"/") {
			points = append(points, mp)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				out.WriteByte(v)
				i += 3
				continue
			}
		}
		out.WriteByte(s[i])
	}
	return out.String()
}
