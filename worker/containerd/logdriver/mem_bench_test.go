package logdriver

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Memory of a process, from /proc/PID/smaps_rollup, in KiB.
type memUse struct{ Rss, Pss, PssAnon int }

func readMem(pid int) (memUse, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return memUse{}, err
	}
	defer f.Close()
	var m memUse
	s := bufio.NewScanner(f)
	for s.Scan() {
		fs := strings.Fields(s.Text())
		if len(fs) < 2 {
			continue
		}
		v, _ := strconv.Atoi(fs[1])
		switch fs[0] {
		case "Rss:":
			m.Rss = v
		case "Pss:":
			m.Pss = v
		case "Pss_Anon:":
			m.PssAnon = v
		}
	}
	return m, s.Err()
}

// BenchmarkDriverMemory starts drivers as the containerd shim starts them
// (pipes on fds 3 and 4, readiness on fd 5, an environment of
// CONTAINER_ID and CONTAINER_NAMESPACE), has each log 200 lines on both
// streams, and reports the mean memory per driver with all of them
// running: PSS (each shared page divided among the processes mapping it)
// is what one more task costs. It builds ./cmd/shoal-logdriver;
// SHOAL_BENCH_OLD_DRIVER="/path/to/binary arg…" measures another driver
// the same way in the same run (e.g. "/tmp/shoald-old log-driver" for the
// driver shoald had built in, which takes the log path after its args).
// SHOAL_BENCH_DRIVERS sets the number of drivers (default 100).
//
//	go test -run '^$' -bench DriverMemory -benchtime 1x ./worker/containerd/logdriver/
func BenchmarkDriverMemory(b *testing.B) {
	n := 100
	if s := os.Getenv("SHOAL_BENCH_DRIVERS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	bin := filepath.Join(b.TempDir(), "shoal-logdriver")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	if out, err := exec.Command(goBin, "build", "-o", bin, "../../../cmd/shoal-logdriver").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	drivers := []struct {
		name string
		argv func(path string) []string
	}{{"shoal-logdriver", func(path string) []string {
		return append([]string{bin}, argv(path, 10<<20, 3)...)
	}}}
	if old := strings.Fields(os.Getenv("SHOAL_BENCH_OLD_DRIVER")); len(old) > 0 {
		drivers = append(drivers, struct {
			name string
			argv func(string) []string
		}{"old", func(path string) []string { return append(append([]string(nil), old...), path) }})
	}
	for _, d := range drivers {
		b.Run(d.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				m := measureDrivers(b, n, d.argv)
				b.ReportMetric(float64(m.Pss), "PSS-KiB/driver")
				b.ReportMetric(float64(m.Rss), "RSS-KiB/driver")
				b.ReportMetric(float64(m.PssAnon), "PSS-anon-KiB/driver")
			}
		})
	}
}

func measureDrivers(b *testing.B, n int, argv func(string) []string) memUse {
	dir := b.TempDir()
	type proc struct {
		cmd      *exec.Cmd
		out, err *os.File
		path     string
	}
	procs := make([]proc, 0, n)
	defer func() {
		for _, p := range procs {
			p.out.Close()
			p.err.Close()
			_ = p.cmd.Wait()
		}
	}()
	for i := 0; i < n; i++ {
		path := filepath.Join(dir, fmt.Sprintf("t%d.cri", i))
		outR, outW, _ := os.Pipe()
		errR, errW, _ := os.Pipe()
		readyR, readyW, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		args := argv(path)
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = []string{"CONTAINER_ID=c" + strconv.Itoa(i), "CONTAINER_NAMESPACE=bench"}
		cmd.ExtraFiles = []*os.File{outR, errR, readyW}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		outR.Close()
		errR.Close()
		readyW.Close()
		_, _ = readyR.Read(make([]byte, 1))
		readyR.Close()
		procs = append(procs, proc{cmd, outW, errW, path})
	}
	for _, p := range procs {
		for j := 0; j < 200; j++ {
			fmt.Fprintf(p.out, "a line on stdout, number %d\n", j)
			fmt.Fprintf(p.err, "a line on stderr, number %d\n", j)
		}
	}
	// Every driver has written its lines (the old one writes a plain-named
	// file the same way).
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range procs {
		for {
			b, _ := os.ReadFile(p.path)
			if strings.Count(string(b), "\n") >= 400 {
				break
			}
			if time.Now().After(deadline) {
				panic("drivers did not write their lines within 30s")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var sum memUse
	for _, p := range procs {
		m, err := readMem(p.cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		sum.Rss += m.Rss
		sum.Pss += m.Pss
		sum.PssAnon += m.PssAnon
	}
	return memUse{Rss: sum.Rss / n, Pss: sum.Pss / n, PssAnon: sum.PssAnon / n}
}
