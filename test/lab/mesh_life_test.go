package lab_test

// TestMesh's lifecycle subtests (issue 11's lifecycle gaps): a shoald restart under established mesh
// connections, 127.0.0.1:<published> on every node, and masquerade=true against the default.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/test/lab"
)

// keptConn is one HTTP/1.1 keep-alive connection from Outside through a node's published port.
type keptConn struct {
	via     string // the node it enters by
	c       net.Conn
	br      *bufio.Reader
	replica string // who answered the first request
}

func openKept(ns taskNS, h *lab.Host, port uint16) (*keptConn, error) {
	c, err := ns.dial("tcp4", netip.AddrPortFrom(h.Addr, port).String(), 2*time.Second)
	if err != nil {
		return nil, err
	}
	k := &keptConn{via: h.Name, c: c, br: bufio.NewReader(c)}
	a, err := k.get(2 * time.Second)
	if err != nil {
		c.Close()
		return nil, err
	}
	k.replica = a.Host
	return k, nil
}

// get makes one request on the kept connection.
func (k *keptConn) get(timeout time.Duration) (meshAnswer, error) {
	_ = k.c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(k.c, "GET / HTTP/1.1\r\nHost: mweb\r\n\r\n"); err != nil {
		return meshAnswer{}, err
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return meshAnswer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return meshAnswer{}, err
	}
	return parseWhoami(b)
}

// ingressLink is the node's ingress veth as `ip -o link` shows it (index, name, MAC).
func ingressLink(h *lab.Host) string {
	out, _ := h.Exec(context.Background(), "ip", "-o", "link", "show")
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && strings.Contains(f[1], "-ing") {
			mac := ""
			for i := range f {
				if f[i] == "link/ether" && i+1 < len(f) {
					mac = f[i+1]
				}
			}
			return f[0] + " " + f[1] + " " + mac
		}
	}
	return ""
}

// testMeshRestart restarts h3's shoald (no mweb task) and then h2's (mweb tasks) under kept connections
// from Outside through every node: each connection answers after the restart, from the same replica,
// and new connections through the restarted node work within a few seconds of it being back. The
// node's ingress veth is kept as it was.
func (c *ovCluster) testMeshRestart(t *testing.T, out taskNS) {
	c.waitRunning(t, "mweb", 3, 60*time.Second)
	for _, victim := range []*lab.Host{c.l.Host(3), c.l.Host(2)} {
		var conns []*keptConn
		for _, h := range c.l.Hosts {
			for i := 0; i < 3; i++ {
				k, err := openKept(out, h, 8080)
				if err != nil {
					t.Fatalf("kept connection through %s:8080: %v", h.Name, err)
				}
				defer func() {
					if k.c != nil {
						k.c.Close()
					}
				}()
				conns = append(conns, k)
			}
		}
		linkBefore := ingressLink(victim)
		r0 := time.Now()
		if err := victim.Restart(); err != nil {
			t.Fatalf("restart %s: %v", victim.Name, err)
		}
		back := time.Now()
		t.Logf("%s restarted: down and back in %v", victim.Name, back.Sub(r0).Round(time.Millisecond))
		// For 8 s after it is back (the gossip rejoins, the managers' node message comes, the resync
		// runs): every kept connection answers, from its replica, every 400 ms, and a new connection
		// through the restarted node is tried as often.
		failed := false
		var keptFails, newFails []string
		firstNew := time.Duration(-1)
		for time.Since(back) < 8*time.Second {
			at := time.Since(back).Round(10 * time.Millisecond)
			for _, k := range conns {
				if k.c == nil {
					continue
				}
				a, err := k.get(5 * time.Second)
				switch {
				case err != nil:
					keptFails = append(keptFails, fmt.Sprintf("+%v via %s (replica %s): %v", at, k.via, k.replica, err))
					k.c.Close()
					k.c = nil
				case a.Host != k.replica:
					keptFails = append(keptFails, fmt.Sprintf("+%v via %s: replica %s became %s", at, k.via, k.replica, a.Host))
				}
			}
			if _, err := meshGet(out, netip.AddrPortFrom(victim.Addr, 8080).String(), time.Second); err != nil {
				newFails = append(newFails, fmt.Sprintf("+%v: %v", at, err))
			} else if firstNew < 0 {
				firstNew = at
			}
			time.Sleep(400 * time.Millisecond)
		}
		t.Logf("%s's restart: %d kept connections (3 through each node), 8 s after it was back: %d failures %q; new connections through it: first answer at +%v, failures %q",
			victim.Name, len(conns), len(keptFails), keptFails, firstNew, newFails)
		if len(keptFails) > 0 {
			failed = true
			t.Errorf("after %s's restart, kept connections broke: %q", victim.Name, keptFails)
		}
		if firstNew < 0 || firstNew > 5*time.Second {
			failed = true
			t.Errorf("after %s's restart, a new connection through it answered at +%v (want within 5 s; -1: never)", victim.Name, firstNew)
		}
		// Every replica again within the bound of the gossip rejoining.
		seen := map[string]bool{}
		_ = lab.Poll(10*time.Second, func() error {
			if a, err := meshGet(out, netip.AddrPortFrom(victim.Addr, 8080).String(), time.Second); err == nil {
				seen[a.Host] = true
			}
			if len(seen) < 3 {
				return fmt.Errorf("replicas %v", seen)
			}
			return nil
		})
		if len(seen) != 3 {
			failed = true
			t.Errorf("after %s's restart, new connections through it reach %d replicas, want 3: %v", victim.Name, len(seen), seen)
		}
		if linkAfter := ingressLink(victim); linkAfter != linkBefore {
			failed = true
			t.Errorf("%s's ingress veth changed across the restart: before %q, after %q", victim.Name, linkBefore, linkAfter)
		} else {
			t.Logf("%s's ingress veth kept: %s", victim.Name, linkAfter)
		}
		if failed {
			t.Logf("%s log tail:\n%s", victim.Name, victim.LogTail(60))
			c.hostDiag(t)
		}
		c.waitReady(60 * time.Second)
	}
}

// testMeshLocalhost: in every host's namespace, 127.0.0.1:8080 reaches all 3 replicas (Docker answers
// a published port on the loopback address for local clients).
func (c *ovCluster) testMeshLocalhost(t *testing.T) {
	c.waitRunning(t, "mweb", 3, 60*time.Second)
	for _, h := range c.l.Hosts {
		ns := taskNS{Path: h.Path(), Task: ovTask{ID: h.Name}}
		seen, remotes, errs := map[string]int{}, map[string]int{}, 0
		var last error
		for i := 0; i < 30; i++ {
			a, err := meshGet(ns, "127.0.0.1:8080", 2*time.Second)
			if err != nil {
				errs++
				last = err
				continue
			}
			seen[a.Host]++
			ip, _, _ := strings.Cut(a.Remote, ":")
			remotes[ip]++
		}
		t.Logf("%s: 127.0.0.1:8080 from the node itself: replicas %v, remotes %v, %d errors (%v)", h.Name, seen, remotes, errs, last)
		if errs > 0 {
			t.Errorf("%s: %d of 30 requests to 127.0.0.1:8080 failed: %v", h.Name, errs, last)
		}
		if len(seen) != 3 {
			t.Errorf("%s: 127.0.0.1:8080 reached %d replicas, want 3: %v", h.Name, len(seen), seen)
		}
	}
}

// testMeshMasquerade: a service published with masquerade=true sees a node's address on the ingress
// network as its client, not Outside's; mweb (the default) sees Outside's.
func (c *ovCluster) testMeshMasquerade(t *testing.T, out taskNS) {
	outIP := c.l.Outside.Addr.String()
	c.createService(t, "mmasq", "--replicas", "2", "--constraint", "node.hostname!=h3",
		"-p", "published=8084,target=80,masquerade=true", c.whoami)
	defer c.try(c.mgr(), "service", "rm", "mmasq")
	ts := c.waitRunning(t, "mmasq", 2, 90*time.Second)
	_ = ts
	for _, h := range c.l.Hosts {
		var a meshAnswer
		err := lab.Poll(10*time.Second, func() error {
			var err error
			a, err = meshGet(out, netip.AddrPortFrom(h.Addr, 8084).String(), time.Second)
			return err
		})
		if err != nil {
			t.Errorf("masquerade: %s:8084: %v", h.Name, err)
			continue
		}
		ip, _, _ := strings.Cut(a.Remote, ":")
		if ip == outIP {
			t.Errorf("masquerade: through %s, replica %s saw Outside's address %s (want a node's)", h.Name, a.Host, ip)
		} else {
			t.Logf("masquerade: through %s, replica %s saw %s (Outside is %s)", h.Name, a.Host, a.Remote, outIP)
		}
		b, err := meshGet(out, netip.AddrPortFrom(h.Addr, 8080).String(), 2*time.Second)
		if err != nil {
			t.Errorf("default: %s:8080: %v", h.Name, err)
			continue
		}
		if ip, _, _ := strings.Cut(b.Remote, ":"); ip != outIP {
			t.Errorf("default (no masquerade): through %s, replica %s saw %s, want Outside's %s", h.Name, b.Host, b.Remote, outIP)
		}
	}
}
