// Package lab runs multi-host tests on one machine: each "host" is a network namespace with a veth to a
// lab bridge and one real shoald process, with its own address, data dir, control socket, containerd
// namespace and log. Tests inject real faults: kill -9, SIGSTOP, graceful stop and restart, partitions
// and packet loss (nftables drops inside the namespaces), and link failures.
//
// # Topology
//
// New(t, Config{Hosts: 3}) makes, named after the lab's Prefix (the Config.Name base plus four random hex
// digits, e.g. "lab3f2a"):
//
//   - a bridge Prefix-br in the root namespace, with no address (IPv4 or IPv6) and with netfilter calls
//     off, so the root namespace neither reaches nor filters lab traffic;
//   - per host hN a namespace Prefix-hN: loopback up, eth0 (peer of the root-side veth Prefix-hN on the
//     bridge) with address .N+10 of the lab subnet (a free 10.251.X.0/24 by default);
//   - a namespace Prefix-out at .2, Lab.Outside: not a host, never partitioned; tests serve things the
//     hosts need there (an in-process image registry) or play foreign clients from it;
//   - a directory Lab.Dir holding each host's data dir, control socket and log.
//
// The lab's addresses exist only inside its namespaces: the test process never routes to them. It reaches
// the daemons through their unix control sockets (which work across network namespaces), and lab
// addresses only from inside a namespace: NS.Exec and NS.Command run programs there, NS.DialContext and
// NS.Listen make sockets there from the test process. So no test traffic leaves the lab.
//
// # Processes
//
// Host.Start runs, inside the host's network namespace,
//
//	shoald --data-dir D --control-socket S --listen-addr IP:4242 --advertise-addr IP:4242 \
//	       --containerd-namespace lab-Prefix-hN --log-format text [Config.ExtraArgs] [Start's args]
//
// (or Config.Command's argv) with stdout and stderr appended to Host.LogPath, and waits, bounded, until the
// control socket accepts a connection. The process enters only the network namespace (nsenter --net), not
// the private mount namespace `ip netns exec` would give it: mounts the daemon makes for containerd and runc
// (secrets on tmpfs, namespace bind mounts) must be visible to them. Each process gets its own UTS
// namespace with the host's name ("h1") as hostname. All hosts share the machine's containerd (through its
// socket file), each in its own containerd namespace; a shoald in a lab must therefore keep every
// machine-global name it creates (files in /run/netns, containerd namespaces, ...) unique per data dir or
// namespace. Host processes get SIGKILL as parent-death signal, so they die with the test process even when
// it is killed by `go test -timeout`.
//
// # Faults
//
// Kill (SIGKILL and reap), Stop (SIGTERM, then SIGKILL after Config.StopTimeout), Restart, Pause/Resume
// (SIGSTOP/SIGCONT) act on the host's process group. Partition, DropInbound and Loss install drops in an
// nftables table inside the receiving hosts' namespaces, at prerouting: blocked senders see silence, not
// errors; Heal and HealAll remove them. LinkDown/LinkUp take the host's veth down and up. The kernel here
// has no netem, so delay is not offered.
//
// # Cleanup contract
//
// The lab is removed by t.Cleanup, whether the test passes, fails or panics: every host process and
// anything else left in the lab's namespaces is killed, the containerd namespaces are emptied (tasks,
// containers, images, snapshots, blobs, leases) and deleted, then namespaces (with their nft tables), veths,
// bridge and directory go. If the test failed, the last 50 lines of each host's log are logged first;
// with SHOAL_LAB_KEEP=1 the directory (data dirs and logs) is kept and its path logged. Cleanup fails the
// test if a namespace or link is left. Should the test process die without cleaning up, the next New with
// the same Config.Name sweeps the leftovers (Sweep); labs of live processes are never touched, since each
// lab records its owner (pid and start time) before creating anything. Every wait is bounded.
//
// The lab needs root, ip (iproute2), nft (nftables) and nsenter (util-linux); New skips the test when not
// root. scripts/lab.sh builds the same topology by hand for people.
//
// # Example
//
//	func TestLeaderKill(t *testing.T) {
//		l := lab.New(t, lab.Config{Hosts: 3, ShoaldPath: lab.BuildShoald(t), ShoalPath: lab.BuildShoal(t)})
//		if err := l.StartAll(); err != nil {
//			t.Fatal(err)
//		}
//		ctx := context.Background()
//		h1, h2, h3 := l.Host(1), l.Host(2), l.Host(3)
//		if _, err := h1.Shoal(ctx, "swarm", "init", "--advertise-addr", h1.APIAddr); err != nil {
//			t.Fatal(err)
//		}
//		tok, err := h1.Shoal(ctx, "swarm", "join-token", "manager", "-q")
//		if err != nil {
//			t.Fatal(err)
//		}
//		for _, h := range []*lab.Host{h2, h3} {
//			if _, err := h.Shoal(ctx, "swarm", "join", "--token", strings.TrimSpace(tok),
//				"--advertise-addr", h.APIAddr, h1.APIAddr); err != nil {
//				t.Fatal(err)
//			}
//		}
//		if err := h1.Partition(); err != nil { // or h1.Kill(), h1.Pause()
//			t.Fatal(err)
//		}
//		lab.WaitFor(t, 10*time.Second, func() error {
//			_, err := h2.Shoal(ctx, "service", "create", "-d", "--name", "after", "--replicas", "0", "img")
//			return err
//		})
//	}
//
// An image registry for the hosts runs in the test process, in the Outside namespace:
//
//	ln, err := l.Outside.Listen("tcp", ":5000")
//	...
//	go http.Serve(ln, registry.New()) // go-containerregistry/pkg/registry
//	// images are then l.Outside.Addr.String()+":5000/name:tag" for the hosts
package lab
