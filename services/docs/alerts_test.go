package docs

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

type rule struct {
	Alert string `yaml:"alert"`
	Expr  string `yaml:"expr"`
	For   string `yaml:"for"`
}

var (
	// a gauge in seconds compared with a threshold: the condition starts
	// that long after what the gauge measures stopped (freshness).
	secondsThreshold = regexp.MustCompile(`_seconds\b[^>]*\)\s*>\s*([0-9.]+)`)
	// a ratio of increases or rates over a window compared with a share:
	// from none to all, the ratio passes the share after share × window.
	ratioThreshold = regexp.MustCompile(`(?s)(?:increase|rate)\([^\[]*\[(\d+[smhd])\]\)\).*/.*\[(\d+[smhd])\]\)\)\s*>\s*([0-9.]+)`)
)

// firesAfter is how long after a step change (the freshness gauge starts
// growing, every evaluation fails, the gauge crosses its threshold) the
// alert fires: the time the expression takes to become true plus the
// rule's for:, and how that sum is made.
func firesAfter(t *testing.T, r rule) string {
	t.Helper()
	hold, err := time.ParseDuration(r.For)
	if err != nil {
		t.Fatalf("%s: for: %q: %v", r.Alert, r.For, err)
	}
	expr := strings.Join(strings.Fields(r.Expr), " ")
	var onset time.Duration
	var why string
	if m := secondsThreshold.FindStringSubmatch(expr); m != nil {
		s, _ := strconv.ParseFloat(m[1], 64)
		onset = time.Duration(s * float64(time.Second))
		why = fmt.Sprintf("%s for the gauge to pass %s s", short(onset), m[1])
	}
	if m := ratioThreshold.FindStringSubmatch(expr); m != nil {
		w, _ := time.ParseDuration(m[2])
		q, _ := strconv.ParseFloat(m[3], 64)
		if d := time.Duration(q * float64(w)).Round(time.Second); d >= time.Minute && d > onset {
			onset = d
			why = fmt.Sprintf("%s for %s of the %s window to go bad", short(d), m[3], m[2])
		}
	}
	if onset == 0 {
		return "`" + short(hold) + "`"
	}
	return fmt.Sprintf("`%s`: %s, then `for: %s`", short(onset+hold), why, short(hold))
}

// short writes a duration as Prometheus does (15m, 1h, 1h30m).
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// TestAlertDurations: the alert table of docs/operations.md has a row for
// every alert in deploy/prometheus/rules, and its "fires after" column is
// the rule's real delay: for: plus the time its expression takes to become
// true after the change it watches (DriftwatchIngestStale fires 15
// minutes after the newest event written stops moving, not 5).
func TestAlertDurations(t *testing.T) {
	dir := root(t)
	files, err := filepath.Glob(filepath.Join(dir, "deploy", "prometheus", "rules", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files: %v", err)
	}
	var rules []rule
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Groups []struct {
				Rules []rule `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range doc.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					rules = append(rules, r)
				}
			}
		}
	}
	page, err := os.ReadFile(filepath.Join(dir, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(string(page), "\n") {
		if !strings.HasPrefix(line, "| `Driftwatch") {
			continue
		}
		cells := splitRow(line)
		rows[strings.Trim(cells[0], "`")] = cells
	}
	for _, r := range rules {
		cells, ok := rows[r.Alert]
		if !ok {
			t.Errorf("docs/operations.md's alert table has no row for %s", r.Alert)
			continue
		}
		if len(cells) != 4 {
			t.Errorf("%s: the row has %d cells, want 4 (alert, fires when, fires after, severity)", r.Alert, len(cells))
			continue
		}
		if want := firesAfter(t, r); cells[2] != want {
			t.Errorf("%s: docs/operations.md says it fires after %q, the rule after %q", r.Alert, cells[2], want)
		}
	}
}

// splitRow splits a Markdown table row on the pipes that are not escaped.
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(strings.TrimSuffix(line, "|"), "|")
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		if line[i] == '\\' && i+1 < len(line) && line[i+1] == '|' {
			cur.WriteString(`\|`)
			i++
			continue
		}
		if line[i] == '|' {
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
			continue
		}
		cur.WriteByte(line[i])
	}
	return append(cells, strings.TrimSpace(cur.String()))
}
