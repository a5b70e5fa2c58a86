// Package testcheck holds the comparisons and golden-file loading that the
// numeric tests share (statistics, correlation, performance, model
// training, Arrow schemas).
//
// Every comparison is written so that NaN fails it: `!(math.Abs(got-want) <=
// tol)` is true for NaN, while the tempting `math.Abs(got-want) > tol` is
// false for NaN and lets a NaN result through as "close".
package testcheck

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Within reports whether got is within tol of want, absolutely. A NaN on
// either side is never within.
func Within(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol
}

// WithinRel reports whether got is within rel·|want| + abs of want. A NaN on
// either side is never within.
func WithinRel(got, want, rel, abs float64) bool {
	return math.Abs(got-want) <= rel*math.Abs(want)+abs
}

// WithinScaled reports whether got is within tol of want, absolutely for
// |want| ≤ 1 and relatively above. A NaN on either side is never within.
func WithinScaled(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*max(1, math.Abs(want))
}

// LoadGolden decodes the calling package's testdata/golden.json into v.
// With update set it first regenerates the file by running
// testdata/golden.py with the Python of the module's .deps/venv.
func LoadGolden(t testing.TB, update bool, v any) {
	t.Helper()
	path := filepath.Join("testdata", "golden.json")
	if update {
		root, err := moduleRoot()
		if err != nil {
			t.Fatalf("regenerate golden file: %v", err)
		}
		py := filepath.Join(root, ".deps", "venv", "bin", "python")
		cmd := exec.Command(py, filepath.Join("testdata", "golden.py"))
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("regenerate golden file (run `bash scripts/deps.sh python` first): %v", err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
}

// moduleRoot is the nearest directory at or above the working directory
// (the package under test) that holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the package directory")
		}
		dir = parent
	}
}
