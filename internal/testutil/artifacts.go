package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// ArtifactDir is where tests keep what a person looks at afterwards
// (screenshots, history visualizations): $SHOAL_ARTIFACT_DIR/sub, or
// shoal-artifacts-<uid>/sub in the system's temporary directory (per user:
// a directory root made there is not writable by another user running the
// unit tier). It is created.
func ArtifactDir(t testing.TB, sub string) string {
	t.Helper()
	root := os.Getenv("SHOAL_ARTIFACT_DIR")
	if root == "" {
		root = filepath.Join(os.TempDir(), fmt.Sprintf("shoal-artifacts-%d", os.Getuid()))
	}
	dir := filepath.Join(root, sub)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
