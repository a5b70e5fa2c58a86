// Command testsummary reads `go test -json` on stdin and prints what a
// person needs from it: the output of every failed test and package, then
// a summary — tests passed, failed and skipped, and the skipped ones grouped
// by their reason (the message of the t.Skip that ended them), so `make
// test-unit` says how many integration tests it left out and why. It exits
// 1 when a test or a package failed, or when the input held no test result.
//
//	go test -json ./... | go run ./internal/testsummary
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

func main() {
	s, err := read(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(1)
	}
	s.print(os.Stdout)
	if !s.ok() {
		os.Exit(1)
	}
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // of build-output
}

// summary is what read gathered.
type summary struct {
	passed, failed, skipped int
	// skips holds the skipped tests by reason.
	skips map[string][]string
	// failures holds the output of each failed test or package, in the
	// order they failed.
	failures []failure
	// packages counts the packages by outcome: ok, FAIL, no test files.
	packages map[string]int
}

type failure struct{ name, output string }

// logLine is a test's log line: four spaces, file:line, the message.
var logLine = regexp.MustCompile(`^\s+[\w.-]+\.go:\d+: (.*)$`)

func read(r io.Reader) (*summary, error) {
	s := &summary{skips: map[string][]string{}, packages: map[string]int{}}
	out := map[string]*strings.Builder{}
	key := func(e event) string { return e.Package + " " + e.Test }
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// go test prints build failures as plain text.
			s.failures = append(s.failures, failure{"(not JSON)", string(line) + "\n"})
			continue
		}
		k := key(e)
		switch e.Action {
		case "build-output":
			name := "build of " + e.ImportPath
			if n := len(s.failures); n > 0 && s.failures[n-1].name == name {
				s.failures[n-1].output += e.Output
			} else {
				s.failures = append(s.failures, failure{name, e.Output})
			}
		case "output":
			b := out[k]
			if b == nil {
				b = &strings.Builder{}
				out[k] = b
			}
			b.WriteString(e.Output)
		case "pass", "fail", "skip":
			text := ""
			if b := out[k]; b != nil {
				text = b.String()
				delete(out, k)
			}
			if e.Test == "" {
				s.packageDone(e.Action, text)
				if e.Action == "fail" {
					s.failures = append(s.failures, failure{e.Package, text})
				}
				continue
			}
			name := e.Package + "." + e.Test
			switch e.Action {
			case "pass":
				s.passed++
			case "fail":
				s.failed++
				s.failures = append(s.failures, failure{name, text})
			case "skip":
				s.skipped++
				r := skipReason(text)
				s.skips[r] = append(s.skips[r], name)
			}
		}
	}
	return s, sc.Err()
}

func (s *summary) packageDone(action, output string) {
	switch {
	case action == "fail":
		s.packages["FAIL"]++
	case strings.Contains(output, "[no test files]"):
		s.packages["no test files"]++
	default:
		s.packages["ok"]++
	}
}

// skipReason is the last log line of a skipped test's output (t.Skip's
// message, without file:line and a leading "skipping: ").
func skipReason(output string) string {
	reason := "(no message)"
	for _, l := range strings.Split(output, "\n") {
		if m := logLine.FindStringSubmatch(l); m != nil {
			reason = m[1]
		}
	}
	return strings.TrimPrefix(reason, "skipping: ")
}

func (s *summary) ok() bool {
	return s.failed == 0 && s.packages["FAIL"] == 0 && len(s.failures) == 0 && s.passed+s.skipped > 0
}

func (s *summary) print(w io.Writer) {
	for _, f := range s.failures {
		fmt.Fprintf(w, "--- FAIL %s\n%s\n", f.name, strings.TrimRight(f.output, "\n"))
	}
	fmt.Fprintf(w, "\npackages: %d ok, %d failed, %d without tests\n", s.packages["ok"], s.packages["FAIL"], s.packages["no test files"])
	fmt.Fprintf(w, "tests: %d passed, %d failed, %d skipped\n", s.passed, s.failed, s.skipped)
	if s.skipped == 0 {
		return
	}
	reasons := make([]string, 0, len(s.skips))
	for r := range s.skips {
		reasons = append(reasons, r)
	}
	// Most skipped first, then by reason.
	sort.Slice(reasons, func(i, j int) bool {
		if a, b := len(s.skips[reasons[i]]), len(s.skips[reasons[j]]); a != b {
			return a > b
		}
		return reasons[i] < reasons[j]
	})
	fmt.Fprintln(w, "skipped, by reason:")
	for _, r := range reasons {
		fmt.Fprintf(w, "%5d  %s\n", len(s.skips[r]), r)
	}
}
