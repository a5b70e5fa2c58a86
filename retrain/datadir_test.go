package retrain

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDataDir: the data directory, when new, and its artifacts and work
// directories, new or not, are 0700; run directories are plain names
// below them.
func TestDataDir(t *testing.T) {
	root := filepath.Join(t.TempDir(), "data", "trainer")
	// A work directory left 0755 by an older trainer is tightened.
	if err := os.MkdirAll(filepath.Join(root, "work"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "work"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o700); err != nil {
		t.Fatal(err)
	}
	artifacts, work, err := makeDataDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if artifacts != filepath.Join(root, "artifacts") || work != filepath.Join(root, "work") {
		t.Errorf("artifacts %s, work %s", artifacts, work)
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	if _, _, err := makeDataDir(fresh); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{root, artifacts, work, fresh, filepath.Join(fresh, "artifacts"), filepath.Join(fresh, "work")} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want 0700", d, fi.Mode().Perm())
		}
	}
	if d, err := runDir(work, "churn", "r0123"); err != nil || d != filepath.Join(work, "churn", "r0123") {
		t.Errorf("runDir: %s, %v", d, err)
	}
	for _, bad := range [][2]string{{"..", "r"}, {".", "r"}, {"a/b", "r"}, {"m", ".."}, {"m", "/abs"}, {"", "r"}} {
		if d, err := runDir(work, bad[0], bad[1]); err == nil {
			t.Errorf("runDir(%q, %q) = %s, want an error", bad[0], bad[1], d)
		}
	}
}
