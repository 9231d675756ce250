package dockercli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/test/lab"
)

const ctrAddress = "/run/containerd/containerd.sock"

// cli is one docker CLI the tests drive: every test runs with each.
type cli struct {
	name string // "28" or "20.10": the subtest's name
	path string
}

// docker28 is the docker CLI 28.2.2 every machine here has on its PATH;
// docker2010 is Debian's docker.io client (the package's dockerd is never
// started).
var (
	docker28   = cli{name: "28", path: "/usr/local/bin/docker"}
	docker2010 = cli{name: "20.10", path: "/usr/bin/docker"}
)

// forEachCLI runs f as one subtest per docker CLI. A missing CLI fails the
// test under SHOAL_TEST_ROOT=1 (make test) and skips its subtest otherwise.
func forEachCLI(t *testing.T, f func(t *testing.T, c cli)) {
	for _, c := range []cli{docker28, docker2010} {
		c := c
		t.Run("docker-"+c.name, func(t *testing.T) {
			out, err := exec.Command(c.path, "--version").CombinedOutput()
			if err == nil && !strings.HasPrefix(string(out), "Docker version "+c.name+".") {
				err = fmt.Errorf("it is %q", strings.TrimSpace(string(out)))
			}
			if err != nil {
				how := "build it with `go build -o /usr/local/bin/docker github.com/docker/cli/cmd/docker` at v28.2.2+incompatible"
				if c == docker2010 {
					how = "install Debian's docker.io without starting its dockerd (scripts/install-deps.sh does)"
				}
				if testutil.Strict() {
					t.Fatalf("the docker %s CLI at %s is not usable (%v): %s", c.name, c.path, err, how)
				}
				t.Skipf("the docker %s CLI at %s is not usable: %v", c.name, c.path, err)
			}
			f(t, c)
		})
	}
}

// daemon is one shoald subprocess serving the Engine API.
type daemon struct {
	t         testing.TB
	cli       cli
	dir       string
	addr      string // cluster API
	tcpAddr   string // Engine API over mTLS
	ns        string
	bridge    string
	bin       string
	args      []string
	cmd       *exec.Cmd
	logMu     sync.Mutex
	log       bytes.Buffer
	exited    chan struct{}
	exitErr   error
	dockerEnv []string
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (d *daemon) Write(p []byte) (int, error) {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	return d.log.Write(p)
}

func (d *daemon) logs() string {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	return d.log.String()
}

func (d *daemon) dockerSocket() string { return filepath.Join(d.dir, "docker.sock") }

// startDaemon runs shoald with the Engine API on a unix socket and, when
// tlsDir is not empty, on TCP with the TLS files there (writeTLS); it
// removes everything it made at the end. The daemon's docker methods run
// the CLI c. extra are more shoald flags (e.g. --docker-max-body).
func startDaemon(t testing.TB, c cli, tlsDir string, extra ...string) *daemon {
	t.Helper()
	testutil.RequiresContainerd(t)
	testutil.HostNetns(t) // its mesh table, VXLAN port and gossip port are the host's
	bin := lab.BuildShoald(t)
	dir, err := os.MkdirTemp("", "dockercli") // short: socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("dockercli-%d-%d", os.Getpid(), time.Now().UnixNano()%1000000)
	sum := sha256.Sum256([]byte(ns))
	d := &daemon{t: t, cli: c, dir: dir, addr: freeAddr(t), tcpAddr: freeAddr(t), ns: ns, bridge: "shoal-" + hex.EncodeToString(sum[:])[:8]}
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("shoald log:\n%s", d.logs())
		}
		if err := lab.CleanNode(ctrAddress, d.ns, d.dir, d.bridge); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		_ = os.RemoveAll(d.dir)
	})
	args := []string{"--data-dir", filepath.Join(dir, "data"), "--control-socket", filepath.Join(dir, "ctl.sock"),
		"--listen-addr", d.addr, "--advertise-addr", d.addr, "--containerd-namespace", ns}
	if tlsDir != "" {
		args = append(args, "--docker-tcp-addr", d.tcpAddr, "--docker-tls-cert", filepath.Join(tlsDir, "server-cert.pem"),
			"--docker-tls-key", filepath.Join(tlsDir, "server-key.pem"), "--docker-tls-ca", filepath.Join(tlsDir, "ca.pem"))
	}
	d.bin, d.args = bin, append(args, extra...)
	// The docker CLI keeps its config (contexts, auth) in a directory of
	// the test's own.
	d.dockerEnv = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(dir, "docker-config"), "DOCKER_HOST=", "DOCKER_CONTEXT=", "DOCKER_TLS_VERIFY=", "DOCKER_CERT_PATH=")
	d.start()
	return d
}

// start runs shoald and waits until docker version answers.
func (d *daemon) start() {
	t := d.t
	t.Helper()
	d.cmd = exec.Command(d.bin, d.args...)
	d.cmd.Stdout, d.cmd.Stderr = d, d
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	d.exited = exited
	go func(cmd *exec.Cmd) { d.exitErr = cmd.Wait(); close(exited) }(d.cmd)
	testutil.EventuallyErr(t, 20*time.Second, 50*time.Millisecond, func() error {
		select {
		case <-exited:
			t.Fatalf("shoald exited at start: %v\n%s", d.exitErr, d.logs())
		default:
		}
		_, err := d.docker("version")
		return err
	}, "the Engine API answers docker version")
}

// stop sends SIGTERM and waits: the gateway stops with the node.
func (d *daemon) stop() {
	if d.cmd == nil {
		return
	}
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		d.t.Errorf("shoald did not stop within 30s of SIGTERM")
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

// docker runs the docker CLI against the unix socket.
func (d *daemon) docker(args ...string) (string, error) {
	return d.dockerWith(append([]string{"-H", "unix://" + d.dockerSocket()}, args...)...)
}

func (d *daemon) dockerWith(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.cli.path, args...)
	cmd.Env = d.dockerEnv
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (d *daemon) mustDocker(args ...string) string {
	d.t.Helper()
	out, err := d.docker(args...)
	if err != nil {
		d.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// wantLines checks that out has every line (trimmed) of want.
func wantLines(t *testing.T, what, out string, want ...string) {
	t.Helper()
	have := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		have[strings.TrimSpace(l)] = true
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("%s lacks the line %q:\n%s", what, w, out)
		}
	}
}

// TestDockerCLISwarmLifecycle: docker version, info, swarm init,
// join-token, update, leave, as a docker user types them.
func TestDockerCLISwarmLifecycle(t *testing.T) {
	forEachCLI(t, func(t *testing.T, c cli) {
		tlsDir := writeTLS(t)
		d := startDaemon(t, c, tlsDir)

		out := d.mustDocker("version")
		wantLines(t, "docker version", out, "API version:      1.50 (minimum version 1.41)", "OS/Arch:          linux/amd64")
		if !regexp.MustCompile(`(?m)^Server: shoal \S+\n Engine:\n  Version:\s+\S+`).MatchString(out) {
			t.Errorf("docker version lacks the engine version:\n%s", out)
		}

		// A pinned version is served when in range, refused with docker's
		// words when not.
		pinned := func(v string) (string, error) {
			cmd := exec.Command(d.cli.path, "-H", "unix://"+d.dockerSocket(), "version", "--format", "{{.Server.APIVersion}}")
			cmd.Env = append(d.dockerEnv, "DOCKER_API_VERSION="+v)
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		if out, err := pinned("1.41"); err != nil || strings.TrimSpace(out) != "1.50" {
			t.Errorf("DOCKER_API_VERSION=1.41: %v\n%s", err, out)
		}
		if out, err := pinned("1.40"); err == nil || !strings.Contains(out, "client version 1.40 is too old. Minimum supported API version is 1.41") {
			t.Errorf("DOCKER_API_VERSION=1.40: %v\n%s", err, out)
		}

		out = d.mustDocker("info")
		wantLines(t, "docker info before init", out, "Swarm: inactive", "Operating System: "+osName(t), "OSType: linux", "Architecture: x86_64")

		out = d.mustDocker("swarm", "init", "--listen-addr", d.addr, "--advertise-addr", d.addr)
		m := regexp.MustCompile(`Swarm initialized: current node \((\w+)\) is now a manager\.`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("docker swarm init:\n%s", out)
		}
		nodeID := m[1]
		token := strings.TrimSpace(d.mustDocker("swarm", "join-token", "-q", "worker"))
		if token == "" || !strings.Contains(out, "docker swarm join --token "+token+" "+d.addr) {
			t.Fatalf("swarm init does not print the join command with token %q and %s:\n%s", token, d.addr, out)
		}

		out = d.mustDocker("swarm", "join-token", "worker")
		wantLines(t, "docker swarm join-token worker", out, "To add a worker to this swarm, run the following command:", "docker swarm join --token "+token+" "+d.addr)
		mtoken := strings.TrimSpace(d.mustDocker("swarm", "join-token", "-q", "manager"))
		if mtoken == "" || mtoken == token {
			t.Fatalf("manager token %q (worker %q)", mtoken, token)
		}

		out = d.mustDocker("info")
		wantLines(t, "docker info after init", out, "Swarm: active", "NodeID: "+nodeID, "Is Manager: true", "Managers: 1", "Nodes: 1",
			"Task History Retention Limit: 5", "Election Tick: 30", "Heartbeat Tick: 1", "Dispatcher:", "Heartbeat Period: 5 seconds",
			"Expiry Duration: 3 months", "Autolock Managers: false", "Node Address: 127.0.0.1", "Manager Addresses:", d.addr)

		if out := d.mustDocker("swarm", "update", "--task-history-limit", "3"); strings.TrimSpace(out) != "Swarm updated." {
			t.Fatalf("docker swarm update:\n%s", out)
		}
		wantLines(t, "docker info after update", d.mustDocker("info"), "Task History Retention Limit: 3", "Election Tick: 30")

		out = d.mustDocker("swarm", "join-token", "--rotate", "worker")
		wantLines(t, "docker swarm join-token --rotate worker", out, "Successfully rotated worker join token.")
		if t2 := strings.TrimSpace(d.mustDocker("swarm", "join-token", "-q", "worker")); t2 == token || t2 == "" {
			t.Fatalf("worker token not rotated: %q", t2)
		}

		// What shoal does not serve says so, naming the swarm way.
		out, err := d.docker("ps")
		if err == nil || !strings.Contains(out, "shoal runs swarm services") || !strings.Contains(out, "docker service ps") {
			t.Fatalf("docker ps: %v\n%s", err, out)
		}
		out, err = d.docker("swarm", "init", "--listen-addr", d.addr, "--advertise-addr", d.addr)
		if err == nil || !strings.Contains(out, `This node is already part of a swarm. Use "docker swarm leave" to leave this swarm and join another one.`) {
			t.Fatalf("second init: %v\n%s", err, out)
		}

		if out := d.mustDocker("swarm", "leave", "--force"); strings.TrimSpace(out) != "Node left the swarm." {
			t.Fatalf("docker swarm leave --force:\n%s", out)
		}
		wantLines(t, "docker info after leave", d.mustDocker("info"), "Swarm: inactive")
		out, err = d.docker("swarm", "join-token", "worker")
		if err == nil || !strings.Contains(out, `This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.`) {
			t.Fatalf("join-token outside a swarm: %v\n%s", err, out)
		}
		out, err = d.docker("swarm", "leave")
		if err == nil || !strings.Contains(out, "This node is not part of a swarm") {
			t.Fatalf("leave outside a swarm: %v\n%s", err, out)
		}

		// Over TCP: the CA's clients get in; others do not.
		out, err = d.dockerWith("--tlsverify", "--tlscacert", filepath.Join(tlsDir, "ca.pem"), "--tlscert", filepath.Join(tlsDir, "client-cert.pem"),
			"--tlskey", filepath.Join(tlsDir, "client-key.pem"), "-H", "tcp://"+d.tcpAddr, "info", "--format", "{{.Swarm.LocalNodeState}}")
		if err != nil || strings.TrimSpace(out) != "inactive" {
			t.Fatalf("docker over mTLS: %v\n%s", err, out)
		}
		out, err = d.dockerWith("--tlsverify", "--tlscacert", filepath.Join(tlsDir, "ca.pem"), "--tlscert", filepath.Join(tlsDir, "stranger-cert.pem"),
			"--tlskey", filepath.Join(tlsDir, "stranger-key.pem"), "-H", "tcp://"+d.tcpAddr, "version")
		if err == nil || strings.Contains(out, "Server:\n Engine") {
			t.Fatalf("a client of another CA got in: %v\n%s", err, out)
		}
		out, err = d.dockerWith("--tlsverify", "--tlscacert", filepath.Join(tlsDir, "ca.pem"), "-H", "tcp://"+d.tcpAddr, "version")
		if err == nil || strings.Contains(out, "Server:\n Engine") {
			t.Fatalf("a client without a certificate got in: %v\n%s", err, out)
		}
	})
}

// TestDockerCLIJoinAsWorker: docker swarm join makes a worker, which
// answers manager calls with docker's worker message, and leaves.
func TestDockerCLIJoinAsWorker(t *testing.T) {
	forEachCLI(t, func(t *testing.T, c cli) {
		m, w := startDaemon(t, c, ""), startDaemon(t, c, "")
		m.mustDocker("swarm", "init", "--listen-addr", m.addr, "--advertise-addr", m.addr)
		token := strings.TrimSpace(m.mustDocker("swarm", "join-token", "-q", "worker"))
		out := w.mustDocker("swarm", "join", "--token", token, "--listen-addr", w.addr, "--advertise-addr", w.addr, m.addr)
		if strings.TrimSpace(out) != "This node joined a swarm as a worker." {
			t.Fatalf("docker swarm join:\n%s", out)
		}
		wantLines(t, "docker info on the worker", w.mustDocker("info"), "Swarm: active", "Is Manager: false", "Node Address: 127.0.0.1")
		wantLines(t, "docker info on the manager", m.mustDocker("info"), "Managers: 1", "Nodes: 2")
		out, err := w.docker("swarm", "join-token", "worker")
		if err == nil || !strings.Contains(out, "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.") {
			t.Fatalf("join-token on a worker: %v\n%s", err, out)
		}
		if out := w.mustDocker("swarm", "leave"); strings.TrimSpace(out) != "Node left the swarm." {
			t.Fatalf("docker swarm leave on the worker:\n%s", out)
		}
		wantLines(t, "docker info on the worker after leave", w.mustDocker("info"), "Swarm: inactive")
	})
}

// TestDockerCLIAutolock: docker swarm update --autolock prints the key,
// a restarted manager is locked and docker swarm unlock opens it.
func TestDockerCLIAutolock(t *testing.T) {
	forEachCLI(t, func(t *testing.T, c cli) {
		d := startDaemon(t, c, "")
		d.mustDocker("swarm", "init", "--listen-addr", d.addr, "--advertise-addr", d.addr)
		out := d.mustDocker("swarm", "update", "--autolock=true")
		key := strings.TrimSpace(d.mustDocker("swarm", "unlock-key", "-q"))
		if key == "" || !strings.Contains(out, "Swarm updated.") || !strings.Contains(out, key) {
			t.Fatalf("autolock on: key %q\n%s", key, out)
		}
		d.stop()
		d.start()
		wantLines(t, "docker info on a locked manager", d.mustDocker("info"), "Swarm: locked")
		out, err := d.docker("swarm", "join-token", "worker")
		if err == nil || !strings.Contains(out, `Swarm is encrypted and needs to be unlocked before it can be used. Please use "docker swarm unlock" to unlock it.`) {
			t.Fatalf("join-token while locked: %v\n%s", err, out)
		}
		cmd := exec.Command(d.cli.path, "-H", "unix://"+d.dockerSocket(), "swarm", "unlock")
		cmd.Env, cmd.Stdin = d.dockerEnv, strings.NewReader(key+"\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("docker swarm unlock: %v\n%s", err, out)
		}
		testutil.EventuallyErr(t, 20*time.Second, 100*time.Millisecond, func() error {
			out, err := d.docker("info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}")
			if err != nil || strings.TrimSpace(out) != "active true" {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		}, "the unlocked manager is active")
	})
}

// dockerPyScript drives the gateway with docker-py (version=auto: an
// unversioned GET /version first) and prints what it saw.
const dockerPyScript = `
import sys, docker
c = docker.DockerClient(base_url="unix://" + sys.argv[1], version="auto", timeout=60)
print("api", c.api.api_version)
print("ping", c.ping())
print("state", c.info()["Swarm"]["LocalNodeState"])
node_id = c.swarm.init(listen_addr=sys.argv[2], advertise_addr=sys.argv[2])
print("init", node_id)
print("tokens", bool(c.swarm.attrs["JoinTokens"]["Worker"]))
c.swarm.update(task_history_retention_limit=4)
c.swarm.reload()
print("history", c.swarm.attrs["Spec"]["Orchestration"]["TaskHistoryRetentionLimit"])
print("leave", c.swarm.leave(force=True))
try:
    c.containers.list()
except docker.errors.APIError as e:
    print("containers", e.status_code)
`

// python is Debian's interpreter, where python3-docker (docker-py 5.0.3)
// installs: a python3 earlier on the PATH (pyenv) may hold another
// docker-py, or none.
const python = "/usr/bin/python3"

// TestDockerPy: the Python SDK (Debian's python3-docker) negotiates the
// version and drives the swarm calls.
func TestDockerPy(t *testing.T) {
	if err := exec.Command(python, "-c", "import docker").Run(); err != nil {
		if testutil.Strict() {
			t.Fatalf("docker-py is not installed (apt-get install python3-docker): %v", err)
		}
		t.Skipf("docker-py is not installed: %v", err)
	}
	d := startDaemon(t, docker28, "")
	cmd := exec.Command(python, "-c", dockerPyScript, d.dockerSocket(), d.addr)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker-py: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`init (\w+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("docker-py init:\n%s", out)
	}
	wantLines(t, "docker-py", string(out), "api 1.50", "ping True", "state inactive", "tokens True", "history 4", "leave True", "containers 501")
}

func osName(t *testing.T) string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^PRETTY_NAME="?([^"\n]*)"?$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no PRETTY_NAME in /etc/os-release")
	}
	return string(m[1])
}

// writeTLS writes a CA, a server certificate for 127.0.0.1, a client
// certificate of the same CA and one of another CA.
func writeTLS(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ca, caKey := newCA(t, "ops-ca")
	other, otherKey := newCA(t, "other-ca")
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}))
	for _, c := range []struct {
		name   string
		ca     *x509.Certificate
		caKey  *ecdsa.PrivateKey
		server bool
	}{{"server", ca, caKey, true}, {"client", ca, caKey, false}, {"stranger", other, otherKey, false}} {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: c.name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		if c.server {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, c.ca, &key.PublicKey, c.caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, _ := x509.MarshalECPrivateKey(key)
		write(c.name+"-cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
		write(c.name+"-key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}))
	}
	return dir
}

func newCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}
