package testcheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestNoNaNPassingChecks keeps checks that a NaN slips past out of the
// suite. A comparison is false when either side is NaN, so a failure
// condition written as `if math.Abs(got-want) > tol { t.Error(…) }`, or
// `if d := maxDiff(a, b); d > 1e-6`, or `if auc < 0.9`, reports nothing when
// the value under test is NaN. Such checks go through Within, WithinRel,
// WithinScaled, AtMost, AtLeast, Between, Close or AllClose, or are written
// negated: `if !(d <= tol)`.
//
// The scan is syntactic (go/parser, no type information): in every
// *_test.go of the module it flags an ordering comparison (<, <=, >, >=)
// that makes an if statement's condition true without a negation above it,
// when the if's body reports a failure (Error, Errorf, Fatal, Fatalf, Fail,
// FailNow) and one side of the comparison looks like a float: it holds a
// floating-point literal, calls a function of package math or a max-diff
// helper, names a tolerance (tol, eps, …), or is a variable the if's
// initialiser assigned from one of those. Integer counts compared with
// integer literals are left alone; they cannot be NaN.
func TestNoNaNPassingChecks(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		found = append(found, nanPassingChecks(t, rel, src)...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("%s: a NaN passes this check; use testcheck.Within/AtMost/AtLeast/… or write it negated, !(d <= tol)", f)
	}
}

// TestNaNGuardFindsThePatterns runs the scan on a file holding the shapes
// it must flag (marked "bad") and the ones it must leave alone.
func TestNaNGuardFindsThePatterns(t *testing.T) {
	const src = `package p

func f(t *testing.T, got, want, tol, auc float64, n int, a, b []float64) {
	if math.Abs(got-want) > tol { // bad
		t.Errorf("x")
	}
	if d := math.Abs(got - want); d > tol { // bad
		t.Errorf("x")
	}
	if d := maxDiff(a, b); d > 1e-6 { // bad
		t.Fatalf("x")
	}
	if n != 1 || auc < 0.9 { // bad
		t.Fatal("x")
	}
	if x := got / want; math.Abs(x-1) > 0.05 || auc > 0.99 { // bad
		t.Error("x")
	}
	if got < want-tol { // bad
		t.Error("x")
	}
	if !ok || (!math.IsNaN(want) && math.Abs(got-want) > 1e-12) { // bad
		t.Error("x")
	}
	if !(math.Abs(got-want) <= tol) {
		t.Errorf("x")
	}
	if d := math.Abs(got - want); !(d <= tol) {
		t.Errorf("x")
	}
	if !testcheck.Within(got, want, tol) {
		t.Errorf("x")
	}
	if n > 3 || len(a) < 2 {
		t.Errorf("x")
	}
	if math.Abs(got-want) > tol {
		continue // no failure reported here
	}
	if !(auc > 0.5 && auc < 0.6) {
		t.Error("x")
	}
}
`
	var bad []int
	for i, line := range strings.Split(src, "\n") {
		if strings.HasSuffix(line, "// bad") {
			bad = append(bad, i+1)
		}
	}
	var got []int
	for _, f := range nanPassingChecks(t, "p_test.go", []byte(src)) {
		var line int
		if m := regexp.MustCompile(`^p_test\.go:(\d+):`).FindStringSubmatch(f); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		if n := len(got); n == 0 || got[n-1] != line {
			got = append(got, line)
		}
	}
	if !slices.Equal(got, bad) {
		t.Errorf("flagged lines %v, want %v", got, bad)
	}
}

var (
	failureMethods = map[string]bool{"Error": true, "Errorf": true, "Fatal": true, "Fatalf": true, "Fail": true, "FailNow": true}
	toleranceName  = regexp.MustCompile(`(?i)(^|_)(tol|eps|epsilon|tolerance)$|Tol$|Eps$|Tolerance$`)
	maxDiffName    = regexp.MustCompile(`(?i)^max_?abs_?diff$|^maxdiff$`)
)

// nanPassingChecks returns "file:line:col: condition" for each check in src
// that a NaN passes (see TestNoNaNPassingChecks).
func nanPassingChecks(t *testing.T, name string, src []byte) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		is, ok := n.(*ast.IfStmt)
		if !ok || !reportsFailure(is.Body) {
			return true
		}
		floaty := map[string]bool{}
		if as, ok := is.Init.(*ast.AssignStmt); ok {
			for i, lhs := range as.Lhs {
				if id, ok := lhs.(*ast.Ident); ok && i < len(as.Rhs) && looksFloat(as.Rhs[i], nil) {
					floaty[id.Name] = true
				}
			}
		}
		for _, c := range positiveComparisons(is.Cond, true) {
			if looksFloat(c.X, floaty) || looksFloat(c.Y, floaty) {
				out = append(out, fset.Position(c.Pos()).String()+": "+string(src[fset.Position(c.Pos()).Offset:fset.Position(c.End()).Offset]))
			}
		}
		return true
	})
	return out
}

// reportsFailure reports whether body calls a testing failure method
// (outside nested function literals).
func reportsFailure(body *ast.BlockStmt) bool {
	var found bool
	ast.Inspect(body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncLit:
			return false
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok && failureMethods[sel.Sel.Name] {
				found = true
			}
		}
		return !found
	})
	return found
}

// positiveComparisons returns the ordering comparisons in cond that make it
// true when they are true: under && and ||, not under a !.
func positiveComparisons(e ast.Expr, positive bool) []*ast.BinaryExpr {
	switch e := e.(type) {
	case *ast.ParenExpr:
		return positiveComparisons(e.X, positive)
	case *ast.UnaryExpr:
		if e.Op == token.NOT {
			return positiveComparisons(e.X, !positive)
		}
	case *ast.BinaryExpr:
		switch e.Op {
		case token.LAND, token.LOR:
			return append(positiveComparisons(e.X, positive), positiveComparisons(e.Y, positive)...)
		case token.LSS, token.LEQ, token.GTR, token.GEQ:
			if positive {
				return []*ast.BinaryExpr{e}
			}
		}
	}
	return nil
}

// looksFloat reports whether e holds a float literal, a call into package
// math or a max-diff helper, a tolerance's name, or a name in floaty.
func looksFloat(e ast.Expr, floaty map[string]bool) bool {
	var found bool
	ast.Inspect(e, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncLit:
			return false
		case *ast.BasicLit:
			found = found || n.Kind == token.FLOAT
		case *ast.CallExpr:
			switch fun := n.Fun.(type) {
			case *ast.SelectorExpr:
				if id, ok := fun.X.(*ast.Ident); ok && id.Name == "math" {
					found = true
				}
				found = found || maxDiffName.MatchString(fun.Sel.Name)
			case *ast.Ident:
				found = found || maxDiffName.MatchString(fun.Name)
			}
		case *ast.SelectorExpr:
			found = found || toleranceName.MatchString(n.Sel.Name)
		case *ast.Ident:
			found = found || toleranceName.MatchString(n.Name) || floaty[n.Name]
		}
		return !found
	})
	return found
}
