package pki

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

func saveTestState(t *testing.T) (*Store, *RootCA, nodeCert) {
	t.Helper()
	ca := newTestCA(t, clockwork.NewFakeClockAt(epoch))
	n := issue(t, ca, "n1", api.NodeRole_WORKER, testCluster, 0)
	s := NewStore(filepath.Join(t.TempDir(), "certificates"))
	if err := s.Save(NodeState{KeyPEM: n.keyPEM, CertPEM: n.certPEM, RootCAPEM: ca.CertPEM()}); err != nil {
		t.Fatalf("Save: %v", err)
	}
	return s, ca, n
}

func TestStoreRoundTrip(t *testing.T) {
	s, ca, n := saveTestState(t)
	st, err := s.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !bytes.Equal(st.KeyPEM, n.keyPEM) || !bytes.Equal(st.CertPEM, n.certPEM) || !bytes.Equal(st.RootCAPEM, ca.CertPEM()) {
		t.Fatal("loaded state differs from saved")
	}
	if st.Identity != (Identity{NodeID: "n1", Role: api.NodeRole_WORKER, ClusterID: testCluster}) || st.RootCA.Digest() != ca.Digest() {
		t.Fatalf("loaded identity %v / digest wrong", st.Identity)
	}
	for name, want := range map[string]os.FileMode{KeyFile: 0o600, CertFile: 0o644, RootCAFile: 0o644} {
		fi, err := os.Stat(filepath.Join(s.Dir(), name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	if fi, _ := os.Stat(s.Dir()); fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(s.Dir())
	if len(entries) != 3 {
		t.Errorf("directory holds %d entries, want 3 (no temporary files)", len(entries))
	}

	// Renewal overwrites in place.
	renewed := issue(t, ca, "n1", api.NodeRole_MANAGER, testCluster, 0)
	if err := s.Save(NodeState{KeyPEM: renewed.keyPEM, CertPEM: renewed.certPEM, RootCAPEM: ca.CertPEM()}); err != nil {
		t.Fatal(err)
	}
	if st, err = s.Load(); err != nil || st.Identity.Role != api.NodeRole_MANAGER {
		t.Fatalf("after renewal: %v, %v", st, err)
	}

	if err := s.Remove(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Exists(); ok {
		t.Error("files remain after Remove")
	}
	if _, err := s.Load(); !errdefs.IsNotFound(err) {
		t.Errorf("Load after Remove: err = %v, want NotFound", err)
	}
}

func TestStoreEmpty(t *testing.T) {
	s := NewStore(filepath.Join(t.TempDir(), "nothing"))
	if ok, err := s.Exists(); ok || err != nil {
		t.Fatalf("Exists = %v, %v", ok, err)
	}
	if _, err := s.Load(); !errdefs.IsNotFound(err) {
		t.Fatalf("Load: err = %v, want NotFound", err)
	}
	if err := s.Remove(); err != nil {
		t.Fatalf("Remove of nothing: %v", err)
	}
	if err := s.Save(NodeState{KeyPEM: []byte("k")}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Save incomplete: err = %v", err)
	}
}

// Each kind of damage is refused with an error that names the file.
func TestStoreDamaged(t *testing.T) {
	other := newTestCA(t, clockwork.NewFakeClockAt(epoch))
	otherNode := issue(t, other, "n2", api.NodeRole_WORKER, testCluster, 0)
	flip := func(b []byte) []byte {
		b = append([]byte(nil), b...)
		b[len(b)/2] ^= 0x55
		return b
	}
	cases := []struct {
		name   string
		file   string
		damage func(path string, b []byte) error
	}{
		{"cert truncated", CertFile, func(p string, b []byte) error { return os.WriteFile(p, b[:len(b)/2], 0o644) }},
		{"cert empty", CertFile, func(p string, b []byte) error { return os.WriteFile(p, nil, 0o644) }},
		{"cert bytes flipped", CertFile, func(p string, b []byte) error { return os.WriteFile(p, flip(b), 0o644) }},
		{"key deleted", KeyFile, func(p string, _ []byte) error { return os.Remove(p) }},
		{"key bytes flipped", KeyFile, func(p string, b []byte) error { return os.WriteFile(p, flip(b), 0o600) }},
		{"root CA deleted", RootCAFile, func(p string, _ []byte) error { return os.Remove(p) }},
		{"root CA garbage", RootCAFile, func(p string, _ []byte) error { return os.WriteFile(p, []byte("zzz"), 0o644) }},
		{"another node's cert", CertFile, func(p string, _ []byte) error { return os.WriteFile(p, otherNode.certPEM, 0o644) }},
		{"another node's key", KeyFile, func(p string, _ []byte) error { return os.WriteFile(p, otherNode.keyPEM, 0o600) }},
		{"another cluster's root", RootCAFile, func(p string, _ []byte) error { return os.WriteFile(p, other.CertPEM(), 0o644) }},
		{"cert is a directory", CertFile, func(p string, _ []byte) error {
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Mkdir(p, 0o700)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, _, _ := saveTestState(t)
			p := filepath.Join(s.Dir(), c.file)
			b, _ := os.ReadFile(p)
			if err := c.damage(p, b); err != nil {
				t.Fatal(err)
			}
			_, err := s.Load()
			if !errdefs.IsFailedPrecondition(err) {
				t.Fatalf("err = %v, want FailedPrecondition", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, filepath.Base(p)) || !strings.Contains(msg, "to recover") {
				t.Errorf("error %q does not name %s and the recovery", msg, c.file)
			}
		})
	}
}

// A crash between the renames of Save leaves a new key with the old
// certificate and the new certificate staged: Load finishes the job.
func TestStoreInterruptedSave(t *testing.T) {
	s, ca, old := saveTestState(t)
	renewed := issue(t, ca, "n1", api.NodeRole_MANAGER, testCluster, 0)
	dir := s.Dir()

	// Crash after the key rename, before the certificate rename.
	if err := os.WriteFile(filepath.Join(dir, KeyFile), renewed.keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, CertFile+newSuffix), renewed.certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := s.Load()
	if err != nil {
		t.Fatalf("Load after interrupted save: %v", err)
	}
	if st.Identity.Role != api.NodeRole_MANAGER || !bytes.Equal(st.CertPEM, renewed.certPEM) {
		t.Fatal("interrupted save was not rolled forward")
	}
	if _, err := os.Stat(filepath.Join(dir, CertFile+newSuffix)); !os.IsNotExist(err) {
		t.Error("staged certificate left behind")
	}

	// Crash before any rename: the staged files are dropped, the old state
	// stays.
	if err := os.WriteFile(filepath.Join(dir, KeyFile+newSuffix), old.keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, CertFile+newSuffix), old.certPEM[:100], 0o644); err != nil {
		t.Fatal(err)
	}
	st, err = s.Load()
	if err != nil {
		t.Fatalf("Load with partial staged files: %v", err)
	}
	if !bytes.Equal(st.CertPEM, renewed.certPEM) {
		t.Fatal("partial staged files changed the state")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 {
		t.Errorf("directory holds %d entries after cleanup, want 3", len(entries))
	}
}
