// Package testcheck holds the comparisons and golden-file loading that the
// numeric tests share (statistics, correlation, performance, model
// training, Arrow schemas).
//
// Every comparison is written so that NaN fails it: `!(math.Abs(got-want) <=
// tol)` is true for NaN, while the tempting `math.Abs(got-want) > tol` is
// false for NaN and lets a NaN result through as "close". AtMost, AtLeast
// and Between do the same for one-sided bounds, MaxAbsDiff keeps a NaN
// difference instead of skipping it, and Close and AllClose report the
// failure themselves. TestNoNaNPassingChecks scans every *_test.go of the
// module for a failure condition that a NaN would pass, so none comes back.
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

// AtMost reports whether v ≤ bound. NaN is never at most anything, so
// `if !testcheck.AtMost(d, tol)` fails on a NaN d where `if d > tol` does not.
func AtMost(v, bound float64) bool {
	return v <= bound
}

// AtLeast reports whether v ≥ bound. NaN is never at least anything.
func AtLeast(v, bound float64) bool {
	return v >= bound
}

// Between reports whether lo ≤ v ≤ hi. NaN is never between.
func Between(v, lo, hi float64) bool {
	return lo <= v && v <= hi
}

// MaxAbsDiff is the largest |a[i] − b[i]|. Unlike a loop over max or
// math.Max that starts at 0 and skips what it cannot order, it is NaN when
// any difference is NaN (either side NaN, or +Inf against +Inf), and +Inf
// when the lengths differ, so a check on it cannot pass by accident.
func MaxAbsDiff(a, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var m float64
	for i := range a {
		d := math.Abs(a[i] - b[i])
		if math.IsNaN(d) {
			return math.NaN()
		}
		m = max(m, d)
	}
	return m
}

// Close reports, as a test error naming what, a got that is not within tol
// of want (absolutely; NaN on either side is an error). It returns whether
// the check passed.
func Close(t testing.TB, what string, got, want, tol float64) bool {
	t.Helper()
	if Within(got, want, tol) {
		return true
	}
	t.Errorf("%s = %.17g, want %.17g ± %.3g (|Δ| %.3g)", what, got, want, tol, math.Abs(got-want))
	return false
}

// AllClose reports, as a test error naming what, slices of different
// lengths or any element of got not within tol of want (absolutely; NaN is
// an error). It names the first element out of tolerance and the largest
// difference, and returns whether the check passed.
func AllClose(t testing.TB, what string, got, want []float64, tol float64) bool {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", what, len(got), len(want))
		return false
	}
	for i := range got {
		if !Within(got[i], want[i], tol) {
			t.Errorf("%s[%d] = %.17g, want %.17g ± %.3g (max |Δ| over all %d: %.3g)",
				what, i, got[i], want[i], tol, len(got), MaxAbsDiff(got, want))
			return false
		}
	}
	return true
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
