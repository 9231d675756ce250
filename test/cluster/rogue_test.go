package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/shoal-project/shoal/internal/ids"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/test/lab"
)

// clusterState is what a refused rogue must not change.
type clusterState struct{ nodes, members []string }

func (s *swarm) state(t *testing.T) clusterState {
	t.Helper()
	h1 := s.managers[0]
	out := s.sh(h1, "node", "ls", "-q")
	nodes := strings.Fields(out)
	slices.Sort(nodes)
	members, err := s.raftMembers(h1)
	if err != nil {
		t.Fatal(err)
	}
	return clusterState{nodes, members}
}

func (s *swarm) unchanged(t *testing.T, before clusterState) {
	t.Helper()
	after := s.state(t)
	if !slices.Equal(before.nodes, after.nodes) {
		t.Errorf("node list changed: %v -> %v", before.nodes, after.nodes)
	}
	if !slices.Equal(before.members, after.members) {
		t.Errorf("raft membership changed: %v -> %v", before.members, after.members)
	}
}

// TestRogueNodes: every rogue is refused and changes neither the node list
// nor the raft membership (h1..h3 managers, h4 a worker, h5 the rogue
// joiner, the lab's Outside namespace a foreign machine).
func TestRogueNodes(t *testing.T) {
	s := newSwarm(t, spec{managers: 3, workers: 1, spare: 1})
	h1, worker, rogue := s.managers[0], s.workers[0], s.spare[0]
	in, err := s.info(h1)
	if err != nil {
		t.Fatal(err)
	}
	clusterID := in.GetClusterId()
	realTok, err := pki.ParseJoinToken(s.workerToken)
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := pki.NewRootCA(nil)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, filepath.Join(h1.DataDir, "certificates", "root-ca.crt")))

	// refusedJoin runs `swarm join` on the rogue host and expects a refusal
	// that leaves the rogue outside any swarm and the cluster as it was.
	refusedJoin := func(t *testing.T, token, via string) string {
		t.Helper()
		before := s.state(t)
		out, err := try(rogue, 40*time.Second, "swarm", "join", "--token", token, "--advertise-addr", rogue.APIAddr, via)
		if err == nil {
			t.Fatalf("rogue join through %s succeeded: %s", via, out)
		}
		t.Logf("refused: %v", err)
		if ri, err := s.info(rogue); err != nil || ri.GetState() != api.InfoResponse_INACTIVE {
			t.Errorf("rogue after the refused join: state %v, err %v; want INACTIVE", ri.GetState(), err)
		}
		s.unchanged(t, before)
		return err.Error()
	}

	t.Run("wrong secret", func(t *testing.T) {
		forged, err := pki.GenerateJoinToken(realTok.Digest) // right digest, fresh secret
		if err != nil {
			t.Fatal(err)
		}
		refusedJoin(t, forged, h1.APIAddr)
	})

	t.Run("wrong CA digest against the real manager", func(t *testing.T) {
		tok := pki.JoinToken{Digest: otherCA.Digest(), Secret: realTok.Secret}.String()
		if msg := refusedJoin(t, tok, h1.APIAddr); !strings.Contains(msg, "digest") {
			t.Errorf("the refusal does not mention the CA digest: %s", msg)
		}
	})

	t.Run("wrong CA digest: joiner aborts before sending the secret", func(t *testing.T) {
		fake := startFakeManager(t, s.l, otherCA)
		// The swarm's real worker token, presented to a manager whose CA is
		// another: the joiner must stop after GetRootCACertificate.
		refusedJoin(t, s.workerToken, fake.addr)
		calls := fake.calls()
		if !slices.Contains(calls, "/shoal.v1.CA/GetRootCACertificate") {
			t.Fatalf("the fake manager was never asked for its CA (calls %v): the test proves nothing", calls)
		}
		for _, c := range calls {
			if c != "/shoal.v1.CA/GetRootCACertificate" {
				t.Errorf("the joiner called %s on a manager whose CA does not match the token (calls %v)", c, calls)
			}
		}
		if fake.sawSecret() {
			t.Errorf("the token's secret reached the fake manager")
		}
	})

	t.Run("certificate of another CA calling Control", func(t *testing.T) {
		before := s.state(t)
		// Same cluster ID and manager role, signed by another CA.
		kp := issue(t, otherCA, api.NodeRole_MANAGER, clusterID)
		conn := dialFrom(t, s.l.Outside, h1.APIAddr, pki.ClientConfig(kp, roots, pki.ManagerServerName))
		for _, call := range []func(context.Context, api.ControlClient) error{
			func(ctx context.Context, c api.ControlClient) error {
				_, err := c.ListNodes(ctx, &api.ListNodesRequest{})
				return err
			},
			func(ctx context.Context, c api.ControlClient) error {
				_, err := c.CreateService(ctx, &api.CreateServiceRequest{Spec: &api.ServiceSpec{
					Annotations: &api.Annotations{Name: "foreign"},
					Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "x:1"}},
					Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{}}}})
				return err
			},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := call(ctx, api.NewControlClient(conn))
			cancel()
			if c := status.Code(err); c != codes.Unavailable && c != codes.PermissionDenied && c != codes.Unauthenticated {
				t.Errorf("foreign-CA certificate: got %v (code %v), want a refusal", err, c)
			}
		}
		if ids, _ := serviceIDs(h1); len(ids) != 0 {
			t.Errorf("services exist after the foreign client's create: %v", ids)
		}
		s.unchanged(t, before)
	})

	t.Run("no certificate: only the CA bootstrap answers", func(t *testing.T) {
		before := s.state(t)
		defer s.unchanged(t, before)
		conn := dialFrom(t, s.l.Outside, h1.APIAddr, pki.ClientConfig(nil, roots, pki.ManagerServerName))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := api.NewCAClient(conn).GetRootCACertificate(ctx, &api.GetRootCACertificateRequest{}); err != nil {
			t.Fatalf("GetRootCACertificate without a certificate: %v", err)
		}
		callEvery(t, conn, []codes.Code{codes.Unauthenticated, codes.PermissionDenied}, &api.Control_ServiceDesc, &api.Raft_ServiceDesc)
	})

	t.Run("worker certificate calling every Control and Raft method", func(t *testing.T) {
		before := s.state(t)
		dir := filepath.Join(worker.DataDir, "certificates")
		// A compromised worker's disk: node.key is encrypted with the data
		// key, which the worker's own key unwraps (workers are never locked).
		kr, err := pki.OpenKeyring(dir)
		if err != nil {
			t.Fatal(err)
		}
		keys, ok := kr.Keys()
		if !ok {
			t.Fatalf("%s's keyring is locked", worker.Name)
		}
		st, err := pki.NewEncryptedStore(dir, keys.TLSKeyKey()).Load()
		if err != nil {
			t.Fatal(err)
		}
		kp, err := pki.NewKeyPair(st.CertPEM, st.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		if kp.Identity().Role != api.NodeRole_WORKER {
			t.Fatalf("%s's certificate is %v, not a worker's", worker.Name, kp.Identity())
		}
		wroots := x509.NewCertPool()
		wroots.AddCert(readCert(t, filepath.Join(dir, "root-ca.crt")))
		// From the worker's own namespace, as a compromised worker would.
		conn := dialFrom(t, &worker.NS, h1.APIAddr, pki.ClientConfig(kp, wroots, pki.ManagerServerName))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// The connection itself works: the refusals below are authorization.
		if _, err := api.NewCAClient(conn).GetRootCACertificate(ctx, &api.GetRootCACertificateRequest{}); err != nil {
			t.Fatalf("GetRootCACertificate with the worker's certificate: %v", err)
		}
		callEvery(t, conn, []codes.Code{codes.PermissionDenied}, &api.Control_ServiceDesc, &api.Raft_ServiceDesc)
		s.unchanged(t, before)
	})

	t.Run("CSR asking for manager with the worker token", func(t *testing.T) {
		conn := dialFrom(t, s.l.Outside, h1.APIAddr, pki.ClientConfig(nil, roots, pki.ManagerServerName))
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{
			CommonName: ids.New(), OrganizationalUnit: []string{pki.OUManager}, Organization: []string{clusterID}}}, key)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		resp, err := api.NewCAClient(conn).IssueNodeCertificate(ctx, &api.IssueNodeCertificateRequest{
			Csr: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), Token: s.workerToken})
		if err != nil {
			t.Fatalf("IssueNodeCertificate with the worker token: %v", err)
		}
		cert := parseCert(t, resp.GetCertificate())
		if ou := cert.Subject.OrganizationalUnit; len(ou) != 1 || ou[0] != pki.OUWorker || resp.GetRole() != api.NodeRole_WORKER {
			t.Errorf("a CSR asking for OU=manager with the worker token got OU %v, role %v", ou, resp.GetRole())
		}
		members, _ := s.raftMembers(h1)
		if slices.Contains(members, resp.GetNodeId()) {
			t.Errorf("the node is a raft member")
		}
		// Leave no half-joined node behind for the next subtests.
		s.sh(h1, "node", "rm", "--force", resp.GetNodeId())
	})

	t.Run("old token after rotation", func(t *testing.T) {
		old := s.workerToken
		s.sh(h1, "swarm", "join-token", "--rotate", "worker")
		cur := strings.TrimSpace(s.sh(h1, "swarm", "join-token", "worker", "-q"))
		if cur == old {
			t.Fatalf("join-token --rotate worker did not change the token")
		}
		s.workerToken = cur
		refusedJoin(t, old, h1.APIAddr)
		// The current token still admits the same host: the refusal was the token's.
		s.join(rogue, cur, h1)
		lab.WaitFor(t, 20*time.Second, func() error {
			in, err := s.info(rogue)
			if err != nil || in.GetState() != api.InfoResponse_ACTIVE {
				return fmt.Errorf("rogue with the current token: %v %v", in.GetState(), err)
			}
			return nil
		})
	})

	t.Run("former manager rejoins with the worker token as a worker", func(t *testing.T) {
		former := s.managers[2]
		fin, err := s.info(former)
		if err != nil {
			t.Fatal(err)
		}
		s.sh(h1, "node", "demote", former.Name)
		lab.WaitFor(t, 30*time.Second, func() error {
			m, err := s.raftMembers(h1)
			if err != nil || len(m) != 2 || slices.Contains(m, fin.GetNodeId()) {
				return fmt.Errorf("raft members after demoting %s: %v %v", former.Name, m, err)
			}
			return nil
		})
		// Once the demoted manager itself has applied its removal from raft,
		// and at once, as a script would (before its role has switched to
		// worker): leave is quick and leaves nothing of the old member running.
		lab.WaitFor(t, 10*time.Second, func() error {
			in, err := s.info(former)
			if err != nil {
				return err
			}
			if !in.GetControlAvailable() {
				return nil // already switched to worker
			}
			for _, p := range in.GetManagers() {
				if p.GetNodeId() == fin.GetNodeId() {
					return fmt.Errorf("%s still lists itself among the raft members", former.Name)
				}
			}
			if in.GetLeaderAddr() != "" {
				return fmt.Errorf("%s still follows the leader at %s", former.Name, in.GetLeaderAddr())
			}
			return nil
		})
		if in, err := s.info(former); err == nil {
			t.Logf("leaving from: manager role %v, leader known %q", in.GetControlAvailable(), in.GetLeaderAddr())
		}
		leaveStart := time.Now()
		_, err = try(former, 30*time.Second, "swarm", "leave", "--force")
		took := time.Since(leaveStart)
		t.Logf("swarm leave --force on the demoted %s took %v", former.Name, took.Round(time.Millisecond))
		if err == nil && took > 10*time.Second {
			t.Errorf("swarm leave --force on the demoted manager %s took %v (want under 10s)", former.Name, took.Round(time.Millisecond))
		}
		if err != nil {
			t.Errorf("swarm leave --force on the demoted manager %s: %v", former.Name, err)
			// Carry on from a wiped data directory, so that the rejoin is still checked.
			if err := former.Kill(); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(former.DataDir); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(former.DataDir, 0o700); err != nil {
				t.Fatal(err)
			}
			s.start(former)
		}
		s.join(former, s.workerToken, h1)
		nin, err := s.info(former)
		if err != nil {
			t.Fatal(err)
		}
		lab.WaitFor(t, 30*time.Second, func() error {
			rows, err := s.nodeLs(h1)
			if err != nil {
				return err
			}
			for _, r := range rows {
				if r.ID == nin.GetNodeId() && r.Status == "Ready" && r.ManagerStatus == "" {
					return nil
				}
			}
			return fmt.Errorf("the rejoined %s (%s) is not a Ready worker: %v", former.Name, nin.GetNodeId(), rows)
		})
		cert := readCert(t, filepath.Join(former.DataDir, "certificates", "node.crt"))
		if ou := cert.Subject.OrganizationalUnit; len(ou) != 1 || ou[0] != pki.OUWorker {
			t.Errorf("the rejoined %s has certificate OU %v, want worker", former.Name, ou)
		}
		if m, _ := s.raftMembers(h1); slices.Contains(m, nin.GetNodeId()) || len(m) != 2 {
			t.Errorf("raft members after the rejoin: %v", m)
		}
		// The identity that left must not live on: its node goes Down once
		// its heartbeats stop (3 periods of the default 5s, plus a margin).
		lab.WaitFor(t, 25*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			resp, err := s.control(h1).GetNode(ctx, &api.GetNodeRequest{NodeId: fin.GetNodeId()})
			if err != nil {
				return err
			}
			if st := resp.GetNode().GetStatus().GetState(); st != api.NodeStatus_DOWN {
				return fmt.Errorf("the node %s left as (%s) is still %v: something still heartbeats with its identity", former.Name, fin.GetNodeId(), st)
			}
			return nil
		})
		t.Logf("%s rejoined as %s:\n%s", former.Name, nin.GetNodeId(), s.sh(h1, "node", "ls"))
	})
}

// callEvery calls every method of the given services on conn with an empty
// request and expects one of the codes.
func callEvery(t *testing.T, conn *grpc.ClientConn, want []codes.Code, descs ...*grpc.ServiceDesc) {
	t.Helper()
	n := 0
	for _, d := range descs {
		for _, m := range d.Methods {
			full := "/" + d.ServiceName + "/" + m.MethodName
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := conn.Invoke(ctx, full, &emptypb.Empty{}, &emptypb.Empty{})
			cancel()
			check(t, full, err, want)
			n++
		}
		for _, sd := range d.Streams {
			full := "/" + d.ServiceName + "/" + sd.StreamName
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			cs, err := conn.NewStream(ctx, &grpc.StreamDesc{StreamName: sd.StreamName,
				ClientStreams: sd.ClientStreams, ServerStreams: sd.ServerStreams}, full)
			if err == nil {
				_ = cs.SendMsg(&emptypb.Empty{})
				_ = cs.CloseSend()
				err = cs.RecvMsg(&emptypb.Empty{})
			}
			cancel()
			check(t, full, err, want)
			n++
		}
	}
	t.Logf("%d methods refused", n)
}

func check(t *testing.T, method string, err error, want []codes.Code) {
	t.Helper()
	if c := status.Code(err); !slices.Contains(want, c) {
		t.Errorf("%s: got %v (code %v), want %v", method, err, c, want)
	}
}

// dialFrom makes a gRPC client that connects from inside ns.
func dialFrom(t *testing.T, ns *lab.NS, addr string, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			return ns.DialContext(ctx, "tcp", a)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// issue makes a node key pair signed by ca.
func issue(t *testing.T, ca *pki.RootCA, role api.NodeRole, clusterID string) *pki.KeyPair {
	t.Helper()
	csr, key, err := pki.GenerateCSR()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Sign(csr, ids.New(), role, clusterID, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := pki.NewKeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}
