package dockercli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/test/images"
	"github.com/shoal-project/shoal/test/lab"
	"github.com/shoal-project/shoal/version"
)

// Golden parity: the same command lines run through the docker 28.2.2 CLI
// (against shoald's Engine API) and through shoal (against the same
// daemon's control socket) must print the same stdout and stderr and exit
// with the same status, once the program name, IDs, join tokens and times
// are normalised. Each difference that remains is a named exception in
// parityExceptions with its reason; an exception whose difference is gone
// fails the test too, so that the list stays true.

// shoalCLI runs the built shoal binary against d's control socket.
type shoalCLI struct {
	bin string
	d   *daemon
}

func (s shoalCLI) run(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, nil, s.bin, append([]string{"-H", "unix://" + filepath.Join(s.d.dir, "ctl.sock")}, args...)...)
}

// dockerRun runs docker 28.2.2 against d's Engine API socket.
func dockerRun(t *testing.T, d *daemon, args ...string) result {
	t.Helper()
	return run(t, d.dockerEnv, d.cli.path, append([]string{"-H", "unix://" + d.dockerSocket()}, args...)...)
}

// exception is a difference that stays, on one stream of one case.
type exception struct {
	tag    string // "inspect helper", "digest helper" (removed when their work merges), or "" for a lasting one
	reason string
}

// parityExceptions are keyed "case/stream" (stream: stdout, stderr, exit).
var parityExceptions = map[string]exception{
	"missing-network-rm/stderr":   {"", "docker 28.2.2 ends network rm's errors with a line 'exit status 1' (its status error has no message); shoal prints the errors only"},
	"usage-secret-no-file/stderr": {"", "docker reads the secret from a file it requires (secret file is required); shoal's secret create wants two arguments (SECRET and a file or -) and says so with the usage lines (exit status 1 in both)"},
	"usage-mode/stderr":           {"", "docker checks --mode after parsing (Unknown mode: daemonset, only replicated and global supported); shoal's flag refuses it while parsing, naming all four modes, with the usage lines (exit status 1 in both)"},
}

var (
	tokenRE  = regexp.MustCompile(`S[A-Z]*TKN-1-[0-9a-z]+-[0-9a-z]+`)
	longIDRE = regexp.MustCompile(`\b[0-9a-z]{25}\b`)
	shortRE  = regexp.MustCompile(`\b[0-9a-z]{10,12}\b`)
	agoRE    = regexp.MustCompile(`\b(Less than a second|About a minute|About an hour|\d+ (seconds?|minutes?|hours?|days?|weeks?|months?|years?)) ago\b`)
	dateRE   = regexp.MustCompile(`\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?( ?([+-]\d{2}:?\d{2}|Z))?( (UTC|utc))?`)
	dockerRE = regexp.MustCompile(`\bdocker\b`)
	digitRE  = regexp.MustCompile(`[0-9]`)
	// partialRE is a converge line between the first and the last.
	partialRE = regexp.MustCompile(`^overall progress: (\d+) out of (\d+) tasks$`)
)

// normalise replaces what legitimately differs between two runs: the
// program name, IDs (full and truncated), join tokens and times; and it
// keeps one of consecutive equal lines (the converge display without a
// terminal: docker writes a line on every poll, shoal when it changes),
// and drops the converge lines between "0 out of N" and "N out of N",
// whose counts depend on when the polls fall.
func normalise(s string, docker bool) string {
	if docker {
		s = strings.ReplaceAll(s, "the Docker daemon", "the shoal daemon")
		s = dockerRE.ReplaceAllString(s, "shoal")
	}
	s = tokenRE.ReplaceAllString(s, "<TOKEN>")
	s = longIDRE.ReplaceAllStringFunc(s, func(id string) string {
		if !digitRE.MatchString(id) {
			return id
		}
		return "<ID>"
	})
	s = shortRE.ReplaceAllStringFunc(s, func(id string) string {
		if !digitRE.MatchString(id) || len(id) != 12 && len(id) != 10 {
			return id
		}
		return "<id>"
	})
	s = agoRE.ReplaceAllString(s, "<AGO>")
	s = dateRE.ReplaceAllString(s, "<TIME>")
	lines := strings.Split(s, "\n")
	out := lines[:0]
	for i, l := range lines {
		if i > 0 && l == lines[i-1] && l != "" {
			continue
		}
		if m := partialRE.FindStringSubmatch(l); m != nil && m[1] != "0" && m[1] != m[2] {
			continue // how many tasks ran at one poll depends on timing
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// parity compares the runs of both CLIs and records which exceptions were
// used.
type parity struct {
	t    *testing.T
	seen map[string]bool
}

func (p *parity) compare(name string, d, s result) {
	t := p.t
	t.Helper()
	streams := []struct{ stream, docker, shoal string }{
		{"stdout", normalise(d.stdout, true), normalise(s.stdout, false)},
		{"stderr", normalise(d.stderr, true), normalise(s.stderr, false)},
		{"exit", fmt.Sprint(d.code), fmt.Sprint(s.code)},
	}
	for _, st := range streams {
		key := name + "/" + st.stream
		ex, listed := parityExceptions[key]
		p.seen[key] = true
		same := st.docker == st.shoal
		switch {
		case same && listed:
			t.Errorf("%s: docker and shoal now agree; remove the exception (%s)", key, ex.reason)
		case !same && listed:
			t.Logf("%s differs (exception%s: %s):\n%s", key, tagNote(ex.tag), ex.reason, firstLineDiff(st.docker, st.shoal))
		case !same:
			t.Errorf("%s differs:\n%s", key, firstLineDiff(st.docker, st.shoal))
		}
	}
}

// lineDiff shows the first line that differs (quoted, so that spaces show)
// and both texts.
func firstLineDiff(docker, shoal string) string {
	a, b := strings.Split(docker, "\n"), strings.Split(shoal, "\n")
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	line := func(l []string) string {
		if i < len(l) {
			return fmt.Sprintf("%q", l[i])
		}
		return "(end)"
	}
	return fmt.Sprintf("line %d: docker %s, shoal %s\n--- docker\n%s\n--- shoal\n%s", i+1, line(a), line(b), docker, shoal)
}

func tagNote(tag string) string {
	if tag == "" {
		return ""
	}
	return " [" + tag + "]"
}

// TestGoldenParity runs the same commands through docker 28.2.2 and shoal
// against one cluster (a second daemon for swarm init) and compares what
// they print, as people's scripts read it.
func TestGoldenParity(t *testing.T) {
	if out, err := exec.Command(docker28.path, "--version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "Docker version 28.2.2,") {
		if testutil.Strict() {
			t.Fatalf("the docker 28.2.2 CLI at %s is not usable (%v): %s", docker28.path, err, out)
		}
		t.Skipf("the docker 28.2.2 CLI at %s is not usable (%v): %s", docker28.path, err, out)
	}
	reg := images.StartRegistry(t)
	busybox := images.PushTest(t, reg, images.Busybox)
	bin := lab.BuildShoal(t)
	d, d2 := startDaemon(t, docker28, ""), startDaemon(t, docker28, "")
	sh, sh2 := shoalCLI{bin, d}, shoalCLI{bin, d2}
	p := &parity{t: t, seen: map[string]bool{}}
	docker := func(args ...string) result { t.Helper(); return dockerRun(t, d, args...) }
	must := func(r result, what string) result {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", what, r.code, r.stdout, r.stderr)
		}
		return r
	}
	both := func(name string, args ...string) {
		t.Helper()
		p.compare(name, docker(args...), sh.run(t, args...))
	}

	// swarm init: docker on one daemon, shoal on the other; the second
	// daemon's address reads as the first's.
	di := docker("swarm", "init", "--listen-addr", d.addr, "--advertise-addr", d.addr)
	si := sh2.run(t, "swarm", "init", "--listen-addr", d2.addr, "--advertise-addr", d2.addr)
	si.stdout = strings.ReplaceAll(si.stdout, d2.addr, d.addr)
	p.compare("swarm-init", di, si)
	both("swarm-init-again", "swarm", "init", "--listen-addr", d.addr, "--advertise-addr", d.addr)

	// service create without a terminal, converging: docker's, removed,
	// then shoal's.
	create := []string{"service", "create", "--name", "web", "--replicas", "2", "--no-resolve-image", busybox, "sleep", "3600"}
	dc := must(docker(create...), "docker service create web")
	must(docker("service", "rm", "web"), "docker service rm web")
	waitGone(t, d, "web")
	p.compare("service-create", dc, must(sh.run(t, create...), "shoal service create"))

	for _, c := range []struct {
		name string
		args []string
	}{
		{"service-ls", []string{"service", "ls"}},
		{"service-ls-format", []string{"service", "ls", "--format", "{{.Name}} {{.Mode}} {{.Replicas}} {{.Image}}"}},
		{"service-ls-q", []string{"service", "ls", "-q"}},
		{"service-ps", []string{"service", "ps", "web"}},
		{"service-ps-no-trunc", []string{"service", "ps", "--no-trunc", "web"}},
		{"service-ps-format", []string{"service", "ps", "--format", "{{.Name}} {{.Image}} {{.DesiredState}}", "web"}},
		{"node-ls", []string{"node", "ls"}},
		{"node-ls-format", []string{"node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}} {{.EngineVersion}}"}},
		{"network-ls", []string{"network", "ls"}},
		{"service-inspect-pretty", []string{"service", "inspect", "--pretty", "web"}},
		{"node-inspect-pretty", []string{"node", "inspect", "--pretty", "self"}},
	} {
		both(c.name, c.args...)
	}

	// secrets and configs: create (docker's removed, then shoal's), ls.
	file := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"secret", "config"} {
		dc := docker(kind, "create", "k1", file)
		must(docker(kind, "rm", "k1"), "docker "+kind+" rm")
		p.compare(kind+"-create", dc, must(sh.run(t, kind, "create", "k1", file), "shoal "+kind+" create"))
		both(kind+"-ls", kind, "ls")
		both(kind+"-create-duplicate", kind, "create", "k1", file)
	}
	must(docker("network", "create", "-d", "overlay", "net1"), "docker network create")
	both("network-create-duplicate", "network", "create", "-d", "overlay", "net1")
	both("service-create-duplicate", "service", "create", "-d", "--name", "web", "--no-resolve-image", busybox)

	// Objects that do not exist.
	for _, c := range [][]string{
		{"service", "rm", "nope"}, {"service", "inspect", "nope"}, {"service", "ps", "nope"},
		{"service", "scale", "nope=2"}, {"service", "update", "--replicas", "2", "nope"}, {"service", "logs", "nope"},
		{"node", "inspect", "nope"}, {"node", "rm", "nope"}, {"node", "update", "--availability", "drain", "nope"},
		{"network", "inspect", "nope"}, {"network", "rm", "nope"},
		{"secret", "inspect", "nope"}, {"secret", "rm", "nope"}, {"config", "inspect", "nope"}, {"config", "rm", "nope"},
	} {
		both("missing-"+strings.Join(c[:2], "-"), c...)
	}
	both("missing-one-of-two-ps", "service", "ps", "--format", "{{.Name}} {{.DesiredState}}", "web", "nope")
	both("missing-one-of-two-inspect", "service", "inspect", "--format", "{{.Spec.Name}}", "web", "nope")

	// Usage errors, refused before any call.
	for _, c := range []struct {
		name string
		args []string
	}{
		{"usage-replicas-negative", []string{"service", "create", "--replicas", "-1", busybox}},
		{"usage-unknown-flag", []string{"service", "create", "--colour", "red", busybox}},
		{"usage-unknown-global-flag", []string{"--colour", "service", "ls"}},
		{"usage-no-image", []string{"service", "create"}},
		{"usage-ls-args", []string{"node", "ls", "extra"}},
		{"usage-exactly", []string{"swarm", "join-token"}},
		{"usage-unknown-command", []string{"servic", "ls"}},
		{"usage-unknown-subcommand", []string{"service", "bogus"}},
		{"usage-scale-specifier", []string{"service", "scale", "web"}},
		{"usage-mode", []string{"service", "create", "--mode", "daemonset", busybox}},
		{"usage-ls-no-trunc", []string{"service", "ls", "--no-trunc"}},
		{"usage-secret-no-file", []string{"secret", "create", "x"}},
	} {
		both(c.name, c.args...)
	}

	// What the daemon refuses.
	host := strings.TrimSpace(must(docker("node", "ls", "--format", "{{.Hostname}}"), "docker node ls").stdout)
	both("refused-demote-last-manager", "node", "demote", host)
	both("refused-rm-manager", "node", "rm", host)
	both("refused-leave-manager", "swarm", "leave")
	both("usage-scale-value", "service", "scale", "nope=x")

	// A daemon that is not there.
	nowhere := "unix://" + filepath.Join(t.TempDir(), "none.sock")
	p.compare("unreachable-daemon", run(t, d.dockerEnv, docker28.path, "-H", nowhere, "service", "ls"),
		run(t, nil, bin, "-H", nowhere, "service", "ls"))

	// scale without a terminal, converging: docker to 3, back to 2, shoal
	// to 3.
	ds := must(docker("service", "scale", "web=3"), "docker service scale web=3")
	must(docker("service", "scale", "-d", "web=2"), "docker service scale -d web=2")
	waitReplicas(t, d, "web", "2/2")
	p.compare("service-scale", ds, must(sh.run(t, "service", "scale", "web=3"), "shoal service scale web=3"))

	// update without a terminal, converging: docker's, then shoal's.
	p.compare("service-update", must(docker("service", "update", "--force", "--no-resolve-image", "web"), "docker service update"),
		must(sh.run(t, "service", "update", "--force", "--no-resolve-image", "web"), "shoal service update"))

	// create resolving the image's digest (docker asks the Engine API,
	// shoal the daemon): docker's, removed, then shoal's.
	resolve := []string{"service", "create", "-d", "--name", "dig", busybox}
	dd := must(docker(resolve...), "docker service create dig")
	must(docker("service", "rm", "dig"), "docker service rm dig")
	waitGone(t, d, "dig")
	p.compare("service-create-resolve", dd, must(sh.run(t, resolve...), "shoal service create dig"))
	both("service-ps-resolved-no-trunc", "service", "ps", "--no-trunc", "--format", "{{.Name}} {{.Image}}", "dig")

	// The engine version is plain semver, the same through docker (the
	// Engine API's /version, /info and node description) and shoal.
	for _, r := range []result{
		docker("version", "--format", "{{.Server.Version}}"),
		docker("info", "--format", "{{.ServerVersion}}"),
		docker("node", "ls", "--format", "{{.EngineVersion}}"),
		sh.run(t, "node", "ls", "--format", "{{.EngineVersion}}"),
	} {
		if got := strings.TrimSpace(r.stdout); got != version.Version || r.code != 0 {
			t.Errorf("engine version %q (exit %d, %s), want %q", got, r.code, r.stderr, version.Version)
		}
	}
	if !regexp.MustCompile(`(?m)^ Server Version: ` + regexp.QuoteMeta(version.Version) + `$`).MatchString(sh.run(t, "info").stdout) {
		t.Errorf("shoal info does not show Server Version: %s", version.Version)
	}

	// rm: docker's, the service made again, shoal's.
	dr := must(docker("service", "rm", "web"), "docker service rm web")
	waitGone(t, d, "web")
	must(docker(create[:len(create)-2]...), "docker service create again")
	p.compare("service-rm", dr, must(sh.run(t, "service", "rm", "web"), "shoal service rm web"))

	var stale []string
	for key := range parityExceptions {
		if !p.seen[key] {
			stale = append(stale, key)
		}
	}
	sort.Strings(stale)
	for _, key := range stale {
		t.Errorf("exception %s names no compared stream: remove it", key)
	}
}

// waitGone waits until the service is gone with all its tasks.
func waitGone(t *testing.T, d *daemon, name string) {
	t.Helper()
	testutil.EventuallyErr(t, 60*time.Second, 200*time.Millisecond, func() error {
		r := dockerRun(t, d, "service", "ls", "-q", "--filter", "name="+name)
		if strings.TrimSpace(r.stdout) != "" {
			return fmt.Errorf("service %s still listed", name)
		}
		return nil
	}, "service %s removed", name)
}

// waitReplicas waits until service ls shows want replicas for name.
func waitReplicas(t *testing.T, d *daemon, name, want string) {
	t.Helper()
	testutil.EventuallyErr(t, 60*time.Second, 200*time.Millisecond, func() error {
		r := dockerRun(t, d, "service", "ls", "--filter", "name="+name, "--format", "{{.Replicas}}")
		if got := strings.TrimSpace(r.stdout); got != want {
			return fmt.Errorf("replicas %q", got)
		}
		return nil
	}, "service %s at %s", name, want)
}
