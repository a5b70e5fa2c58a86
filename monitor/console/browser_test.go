package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"golang.org/x/net/html"

	"github.com/driftwatch/driftwatch/internal/testdb"
	"github.com/driftwatch/driftwatch/internal/testenv"
	"github.com/driftwatch/driftwatch/internal/teststack"
)

// problems collects what a page must not have: console errors, uncaught
// exceptions, failed requests and answers of status 400 and above.
type problems struct {
	mu   sync.Mutex
	list []string
}

func (p *problems) add(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.list = append(p.list, fmt.Sprintf(format, args...))
}

func (p *problems) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.list
	p.list = nil
	return out
}

// browser starts headless Chromium (Debian's chromium, from make deps)
// listening for problems.
func browser(t *testing.T) (context.Context, *problems) {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Unavailable(t, "chromium is not on PATH: run `make deps` (scripts/deps.sh chromium)")
		return nil, nil
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1400, 1000), chromedp.UserDataDir(t.TempDir()))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelA() })
	p := &problems{}
	// Open the tab first so that the listener sees every event of the
	// pages (chromedp enables the Runtime, Log and Network domains).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	err = chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value))
				}
				p.add("console.%s: %s", e.Type, strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			p.add("exception: %s", e.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			if e.Entry.Level == log.EntryLevelError || e.Entry.Level == log.EntryLevelWarning {
				p.add("log %s: %s %s", e.Entry.Level, e.Entry.Text, e.Entry.URL)
			}
		case *network.EventLoadingFailed:
			p.add("request failed: %s %s", e.ErrorText, e.BlockedReason)
		case *network.EventResponseReceived:
			if e.Response.Status >= 400 {
				p.add("HTTP %d: %s", e.Response.Status, e.Response.URL)
			}
		}
	})
	if err != nil {
		t.Fatalf("listen to chromium: %v", err)
	}
	return ctx, p
}

// TestConsoleInBrowser runs the real pipeline — driftwatch gen (f3 shifted
// by two standard deviations and new categories in c0 for the last hour)
// → Kafka → ingest → ClickHouse → monitor — and loads every console page
// in headless Chromium: no console error, no failed request; the heatmap
// marks f3's cells drifted in the latest window and not f0's; the
// importance ranking (of a seeded champion) puts f3 first and marks c0
// below min_importance; the Slices panel (segments.keys region) shows f3's
// root causes and its flag in every region; following
// the overview's model link, then f3's heatmap cell, lands on f3's
// feature view; the report opens too. Screenshots go to
// .data/screenshots/.
func TestConsoleInBrowser(t *testing.T) {
	ctx, probs := browser(t)
	brokers := testenv.KafkaBrokers(t)
	conn, db := testdb.Open(t, "console")
	root := teststack.RepoRoot(t)
	shots := filepath.Join(root, ".data", "screenshots")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	bins := map[string]string{}
	for _, name := range []string{"ingest", "monitor", "driftwatch"} {
		bins[name] = teststack.Build(t, "./services/"+name)
	}
	prefix := "console" + strconv.FormatInt(time.Now().UnixNano(), 36) + "."
	addr := func() string { return "127.0.0.1:" + strconv.Itoa(teststack.FreePort(t)) }
	ingestAddr, monitorAddr := addr(), addr()
	env := []string{"DRIFTWATCH_KAFKA_BROKERS=" + strings.Join(brokers, ","), "DRIFTWATCH_CLICKHOUSE_URL=" + testdb.URL(t, db),
		"DRIFTWATCH_TOPIC_PREFIX=" + prefix, "DRIFTWATCH_LOG_LEVEL=warn"}
	ing := teststack.Start(t, "ingest", bins["ingest"], append(env, "DRIFTWATCH_HTTP_ADDR="+ingestAddr, "DRIFTWATCH_INGEST_BATCH_AGE=200ms"))
	teststack.WaitHTTP(t, "http://"+ingestAddr+"/readyz", 90*time.Second, ing)

	// Three hours of one model's inferences ending now.
	start := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Second)
	gen := exec.Command(bins["driftwatch"], "gen", "-events", "12000", "-seed", "7", "-start", start.Format(time.RFC3339), "-step", "900ms",
		"-numeric-features", "6", "-categorical-features", "2", "-change", "mean_shift:f3:2.0@+2h,new_categories:c0:0.3@+2h")
	gen.Env = append(os.Environ(), env...)
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("driftwatch gen: %v\n%s", err, out)
	}
	waitFor(t, "the inferences in ClickHouse", 2*time.Minute, func() (bool, string) {
		var n uint64
		if err := conn.QueryRow(context.Background(), "SELECT count() FROM inferences").Scan(&n); err != nil {
			return false, err.Error()
		}
		return n >= 11000, fmt.Sprintf("%d rows", n)
	})

	// model-0's champion, as the trainer registers it: f3 its most
	// important feature, c0 one it ignores (so its drift, below
	// min_importance, is shown and triggers nothing).
	if err := conn.Exec(context.Background(), "INSERT INTO models (model_id, version, status, metrics, feature_importance, created_at, updated_at) VALUES "+
		"('model-0', 'v1', 'champion', map(), map('f0', 0.1, 'f1', 0.1, 'f2', 0.1, 'f3', 0.5, 'f4', 0.1, 'f5', 0.1, 'c0', 0, 'c1', 0), now64(3), now64(3))"); err != nil {
		t.Fatal(err)
	}
	// A performance drop's decomposition, as the monitor stores it when
	// labels show one (computed on real data in monitor's
	// TestPerformanceSliceConcept; gen sends no labels here): accuracy fell
	// by 0.12, region=eu within (−0.10), the rest of the rows −0.02.
	end := time.Now().UTC().Add(-30 * time.Minute).Truncate(time.Minute)
	win := fmt.Sprintf("toDateTime64('%s', 3, 'UTC'), toDateTime64('%s', 3, 'UTC')", end.Add(-time.Hour).Format(time.DateTime), end.Format(time.DateTime))
	if err := conn.Exec(context.Background(), `INSERT INTO root_causes (model_id, window_start, window_end, feature, metric, segment_key, segment, rank, kind, mix, within, total, reference_share, current_share, population_psi, computed_at) VALUES
		('model-0', `+win+`, '', 'accuracy', 'region', 'region=eu', 1, 'within', 0.001, -0.101, -0.1, 0.33, 0.34, -0.12, now64(3)),
		('model-0', `+win+`, '', 'accuracy', 'region', '(rest)', 2, 'within', 0, -0.02, -0.02, 0.67, 0.66, -0.12, now64(3))`); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "monitor.yml")
	if err := os.WriteFile(cfg, []byte("policy:\n  consecutive: 1\n  min_importance: 0.05\nsegments:\n  keys: [region]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mon := teststack.Start(t, "monitor", bins["monitor"], append(env, "DRIFTWATCH_HTTP_ADDR="+monitorAddr),
		"-config", cfg, "-window", "30m", "-step", "1m", "-reference", "30m", "-reference-mode", "first")
	teststack.WaitHTTP(t, "http://"+monitorAddr+"/readyz", 90*time.Second, mon)
	base := "http://" + monitorAddr
	// Two windows, so that the heatmap has columns to compare.
	waitFor(t, "two evaluated windows of model-0", 5*time.Minute, func() (bool, string) {
		var h struct {
			History []struct {
				WindowEnd time.Time `json:"window_end"`
			} `json:"history"`
		}
		if err := getJSON(base+"/api/v1/models/model-0/features/f3/history?method=verdict", &h); err != nil {
			return false, err.Error()
		}
		return len(h.History) >= 2, fmt.Sprintf("%d windows", len(h.History))
	})

	count := func(sel string) int {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
		if err != nil {
			t.Fatalf("count %s: %v", sel, err)
		}
		return n
	}
	shot := func(name string) {
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Errorf("screenshot %s: %v", name, err)
			return
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), buf, 0o644); err != nil {
			t.Error(err)
		}
	}
	clean := func(page string) {
		t.Helper()
		for _, p := range probs.take() {
			t.Errorf("%s: %s", page, p)
		}
	}

	// Overview → the model.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS(`table.models`))); err != nil {
		t.Fatalf("overview: %v", err)
	}
	shot("overview")
	if n := count(`tr.model-row[data-model="model-0"]`); n != 1 {
		t.Errorf("overview: %d rows of model-0, want 1", n)
	}
	if n := count(`tr.model-row[data-model="model-0"] .status.drifted, tr.model-row[data-model="model-0"] .status.sustained`); n != 1 {
		t.Errorf("overview: model-0 is not shown drifted")
	}
	clean("overview")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`a.model-link`)), chromedp.WaitVisible(chromedp.CSS(`#heatmap svg`))); err != nil {
		t.Fatalf("follow the model link: %v", err)
	}
	loc := location(t, ctx)
	if !strings.HasSuffix(loc, "/ui/models/model-0") {
		t.Errorf("the model link led to %s", loc)
	}
	shot("model")
	// The heatmap: a row per feature the API has results for (f0-f5, c0,
	// c1 and the prediction's) × the windows; f3 drifted in the latest
	// window, f0 not.
	var res struct {
		Results []struct {
			Feature string `json:"feature"`
			Kind    string `json:"kind"`
		} `json:"results"`
	}
	if err := getJSON(base+"/api/v1/models/model-0/results", &res); err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for _, r := range res.Results {
		if r.Kind != "data_quality" {
			rows[r.Feature] = true
		}
	}
	windows := count(`rect.cell[data-row="f0"]`)
	if windows < 2 || len(rows) < 8 || count(`rect.cell`) != len(rows)*windows {
		t.Errorf("heatmap: %d cells with %d windows, want %d features × the windows", count(`rect.cell`), windows, len(rows))
	}
	latest := func(row string) string {
		js := fmt.Sprintf(`(() => { const c = document.querySelectorAll('rect.cell[data-row=%q]'); return c[c.length-1].getAttribute('class'); })()`, row)
		class, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("heatmap row %s: %v", row, err)
		}
		return class
	}
	if c := latest("f3"); !strings.Contains(c, "drifted") {
		t.Errorf("heatmap: f3's latest cell is %q, want drifted", c)
	}
	if c := latest("f0"); strings.Contains(c, "drifted") {
		t.Errorf("heatmap: f0's latest cell is %q, want not drifted", c)
	}
	// f3's histogram: the reference and the window, bar for bar.
	ref, cur := count(`#feature svg rect.bar.reference`), count(`#feature svg rect.bar.current`)
	if ref < 2 || cur < 2 {
		t.Errorf("f3's histogram: %d reference and %d current bars, want both distributions", ref, cur)
	}
	if n := count(`#feature svg polyline.series`); n != 1 {
		t.Errorf("score history: %d lines, want 1", n)
	}
	if n := count(`#feature svg line.threshold`); n != 1 {
		t.Errorf("score history: %d thresholds, want 1", n)
	}
	// The importance ranking: f3 first (drifted, importance 0.5); c0,
	// drifted by its new categories, has importance 0 and is marked below
	// min_importance.
	if n := count(`#importance tr.importance-row[data-feature="f3"][data-rank="1"].drifted`); n != 1 {
		t.Errorf("importance: f3 is not ranked first and drifted")
	}
	if n := count(`#importance tr.importance-row[data-feature="c0"] .below-min-importance`); n != 1 {
		t.Errorf("importance: c0 is not marked below min_importance")
	}
	if n := count(`.unimportant-list`); n != 1 {
		t.Errorf("model page: %d lists of features below min_importance, want 1", n)
	} else if txt, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`.unimportant-list`))); err != nil || txt != "c0" {
		t.Errorf("model page: below min_importance %q (%v), want c0", txt, err)
	}
	if n := count(`#importance tr.importance-row`); n != 8 {
		t.Errorf("importance: %d ranked features, want the 8 inputs", n)
	}
	// The Slices panel: f3, shifted everywhere, has root causes among the
	// regions, each within-slice, and is flagged in every region.
	if n := count(`#slices tr.root-cause[data-feature="f3"]`); n < 1 {
		t.Errorf("slices: no root cause of f3")
	}
	if n := count(`#slices tr.root-cause[data-feature="f3"] td.rc-kind`); n > 0 {
		kinds, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#slices tr.root-cause[data-feature="f3"] td.rc-kind')].map(e => e.textContent)`))
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range kinds {
			if k != "within" {
				t.Errorf("slices: f3 root cause kinds %v, want within only (the shift is inside every region)", kinds)
				break
			}
		}
	}
	// The performance drop's slices, ranked: region=eu first, within.
	perf, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#slices tr.perf-root-cause')].map(e => e.dataset.metric + " " + e.dataset.segment + " " + e.querySelector('td.rc-kind').textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(perf, []string{"accuracy region=eu within", "accuracy (rest) within"}) {
		t.Errorf("slices: performance root causes %q, want region=eu then (rest), both within", perf)
	}
	for _, region := range []string{"us", "eu", "apac"} {
		if n := count(fmt.Sprintf(`#slices tr.slice-flag[data-segment="region=%s"][data-feature="f3"]`, region)); n != 1 {
			t.Errorf("slices: f3 is not flagged in region=%s", region)
		}
	}
	// c0 drifts in the slices too, each flag noted below min_importance.
	notes, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#slices tr.slice-flag[data-feature="c0"]')].map(e => e.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) == 0 {
		t.Errorf("slices: c0 is flagged in no slice")
	}
	for _, n := range notes {
		if !strings.Contains(n, "below min_importance") {
			t.Errorf("slices: c0's flag %q does not say below min_importance", n)
		}
	}
	if n := count(`details.source`); n < 9 {
		t.Errorf("model page: %d API-and-SQL boxes, want one per view", n)
	}
	clean("model page")
	// Follow f3's latest heatmap cell to its feature view.
	js := `(() => { const c = document.querySelectorAll('rect.cell[data-row="f3"]'); c[c.length-1].closest('a').setAttribute('id', 'f3-latest'); return 1; })()`
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[int](js)); err != nil {
		t.Fatalf("find f3's latest heatmap cell: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#f3-latest rect`)), chromedp.WaitVisible(chromedp.CSS(`#feature .feature-name`))); err != nil {
		t.Fatalf("follow f3's heatmap cell: %v", err)
	}
	loc = location(t, ctx)
	name, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#feature .feature-name`)))
	if err != nil || name != "f3" || !strings.Contains(loc, "feature=f3") {
		t.Errorf("f3's cell led to %s showing feature %q (%v)", loc, name, err)
	}
	shot("model-f3")
	clean("feature f3")

	// c0's category bars mark the new categories (new_0 …).
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui/models/model-0?feature=c0"), chromedp.WaitVisible(chromedp.CSS(`#feature`))); err != nil {
		t.Fatalf("c0: %v", err)
	}
	if n := count(`#feature svg rect.bar.current.new`); n < 1 {
		t.Errorf("c0's category bars: %d current bars marked new, want the new categories", n)
	}
	shot("model-c0")
	clean("feature c0")

	// The trigger the sustained drift fired, with its evidence: f3 among
	// the features, linked to its view.
	waitFor(t, "model-0's retrain trigger", 3*time.Minute, func() (bool, string) {
		var tr struct {
			Triggers []json.RawMessage `json:"triggers"`
		}
		if err := getJSON(base+"/api/v1/triggers?model=model-0", &tr); err != nil {
			return false, err.Error()
		}
		return len(tr.Triggers) > 0, fmt.Sprintf("%d triggers", len(tr.Triggers))
	})
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui/triggers?model=model-0"), chromedp.WaitVisible(chromedp.CSS(`tr.trigger`))); err != nil {
		t.Fatalf("triggers: %v", err)
	}
	if n := count(`tr.evidence-item a[href*="feature=f3"]`); n < 1 {
		t.Errorf("triggers: no evidence row links f3")
	}
	shot("triggers")
	clean("/ui/triggers")

	for _, page := range []struct{ path, sel, name string }{
		{"/ui/models/model-0/training", "#runs", "training"},
		{"/ui/?sort=drift&q=model", "table.models", "overview-sorted"},
		{"/ui/models/no-such-model", "p.empty", "model-empty"},
	} {
		if err := chromedp.Do(ctx, chromedp.Navigate(base+page.path), chromedp.WaitVisible(chromedp.CSS(page.sel))); err != nil {
			t.Errorf("%s: %v", page.path, err)
			continue
		}
		shot(page.name)
		clean(page.path)
	}

	// The report: one file, parses, holds the SVG, nothing to load, and
	// opens in the browser without a problem.
	out := filepath.Join(t.TempDir(), "report.html")
	rep := exec.Command(bins["driftwatch"], "report", "-model", "model-0", "-o", out, "-monitor", base)
	if b, err := rep.CombinedOutput(); err != nil {
		t.Fatalf("driftwatch report: %v\n%s", err, b)
	}
	checkReport(t, out)
	if err := chromedp.Do(ctx, chromedp.Navigate("file://"+out), chromedp.WaitVisible(chromedp.CSS(`#heatmap svg`))); err != nil {
		t.Fatalf("open the report: %v", err)
	}
	if n := count(`rect.cell.drifted[data-row="f3"]`); n < 1 {
		t.Errorf("report: f3 has no drifted cell")
	}
	shot("report")
	clean("report")

	// -at picks the window ending at or before it: the oldest one.
	var mx struct {
		Windows []struct {
			WindowEnd time.Time `json:"window_end"`
		} `json:"windows"`
	}
	if err := getJSON(base+"/api/v1/models/model-0/drift-matrix", &mx); err != nil || len(mx.Windows) < 2 {
		t.Fatalf("drift matrix: %v, %d windows", err, len(mx.Windows))
	}
	oldest := mx.Windows[0].WindowEnd
	out2 := filepath.Join(t.TempDir(), "report-at.html")
	rep = exec.Command(bins["driftwatch"], "report", "-model", "model-0", "-at", oldest.Add(30*time.Second).Format(time.RFC3339), "-o", out2, "-monitor", base)
	if b, err := rep.CombinedOutput(); err != nil {
		t.Fatalf("driftwatch report -at: %v\n%s", err, b)
	}
	checkReport(t, out2)
	raw, err := os.ReadFile(out2)
	if err != nil {
		t.Fatal(err)
	}
	if want := `<strong class="window-end">` + oldest.UTC().Format("2006-01-02 15:04:05Z") + `</strong>`; !strings.Contains(string(raw), want) {
		t.Errorf("report -at %s does not show the window ending %s", oldest.Add(30*time.Second).Format(time.RFC3339), oldest)
	}
}

// checkReport parses the report and requires inline SVG and CSS and no
// script, no external reference and no link to load.
func checkReport(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := html.Parse(f)
	if err != nil {
		t.Fatalf("report does not parse: %v", err)
	}
	tags := map[string]int{}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			tags[n.Data]++
			for _, a := range n.Attr {
				switch a.Key {
				case "src", "srcset", "action", "xlink:href":
					t.Errorf("report: <%s %s=%q> loads something", n.Data, a.Key, a.Val)
				case "href":
					if n.Data != "a" || strings.Contains(a.Val, "://") {
						t.Errorf("report: <%s href=%q> refers outside the file", n.Data, a.Val)
					}
				}
			}
		}
		if n.Type == html.TextNode && strings.Contains(n.Data, "url(") {
			t.Errorf("report: a stylesheet loads url(…)")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if tags["script"] != 0 || tags["link"] != 0 || tags["style"] != 1 || tags["svg"] < 2 {
		t.Errorf("report: %d scripts, %d links, %d styles, %d SVGs; want 0, 0, 1 and at least 2", tags["script"], tags["link"], tags["style"], tags["svg"])
	}
}

func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatalf("location: %v", err)
	}
	return loc
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// waitFor polls cond until it holds or d passes (then fails with its last
// state).
func waitFor(t *testing.T, what string, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s: %s", d, what, state)
		}
		time.Sleep(time.Second)
	}
}
