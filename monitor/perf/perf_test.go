package perf

import (
	"context"
	"errors"
	"flag"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/internal/testcheck"
	"github.com/driftwatch/driftwatch/internal/testdb"
)

// -update regenerates testdata/golden.json with the reference script; it
// needs the venv from `bash scripts/deps.sh python`.
var update = flag.Bool("update", false, "regenerate testdata/golden.json with testdata/golden.py (needs .deps/venv)")

const relTol = 1e-9

type goldenCase struct {
	Name          string  `json:"name"`
	Model         string  `json:"model"`
	Task          Task    `json:"task"`
	PositiveLabel string  `json:"positive_label"`
	Threshold     float64 `json:"threshold"`
	Inferences    struct {
		EventID      []string             `json:"event_id"`
		PredictionID []string             `json:"prediction_id"`
		TS           []int64              `json:"ts"`
		Version      []string             `json:"version"`
		Label        []*string            `json:"label"`
		Score        []*float64           `json:"score"`
		Value        []*float64           `json:"value"`
		Probs        []map[string]float64 `json:"probs"`
	} `json:"inferences"`
	Outcomes struct {
		EventID      []string   `json:"event_id"`
		PredictionID []string   `json:"prediction_id"`
		TS           []int64    `json:"ts"`
		Label        []*string  `json:"label"`
		Value        []*float64 `json:"value"`
		Model        []*string  `json:"model"`
	} `json:"outcomes"`
	Expected struct {
		Inferences    int64      `json:"inferences"`
		Labelled      int64      `json:"labelled"`
		LabelCoverage float64    `json:"label_coverage"`
		LabelDelay    [3]float64 `json:"label_delay_seconds"`
		Metrics       map[string]struct {
			Value   float64 `json:"value"`
			Samples int64   `json:"samples"`
		} `json:"metrics"`
	} `json:"expected"`
}

type golden struct {
	WindowMS  int64        `json:"window_ms"`
	HorizonMS int64        `json:"horizon_ms"`
	Cases     []goldenCase `json:"cases"`
}

func loadGolden(t *testing.T) golden {
	var g golden
	testcheck.LoadGolden(t, *update, &g)
	return g
}

func openDB(t testing.TB) driver.Conn {
	t.Helper()
	conn, _ := testdb.Open(t, "perf_test")
	return conn
}

func insertInferences(t *testing.T, conn driver.Conn, c goldenCase, t0 time.Time) {
	t.Helper()
	in := c.Inferences
	insertBatch(t, conn, "INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, features_numeric, features_categorical, missing_features, prediction_label, prediction_score, prediction_value, prediction_probabilities, segment, latency_ms, kafka_topic, kafka_partition, kafka_offset, ingested_at)",
		len(in.EventID), func(i int) []any {
			probs := map[string]float64{}
			if i < len(in.Probs) && in.Probs[i] != nil {
				probs = in.Probs[i]
			}
			return []any{in.EventID[i], c.Model, in.Version[i], in.PredictionID[i], t0.Add(time.Duration(in.TS[i]) * time.Millisecond),
				map[string]float64{}, map[string]string{}, []string{}, in.Label[i], in.Score[i], in.Value[i],
				probs, map[string]string{}, (*float64)(nil), "t", int32(0), int64(i), time.Now()}
		})
}

// insertOutcomes inserts the outcomes whose index passes keep.
func insertOutcomes(t *testing.T, conn driver.Conn, c goldenCase, t0 time.Time, keep func(i int) bool) {
	t.Helper()
	o := c.Outcomes
	insertBatch(t, conn, "INSERT INTO outcomes (event_id, model_id, prediction_id, timestamp, actual_label, actual_value, kafka_topic, kafka_partition, kafka_offset, ingested_at)",
		len(o.EventID), func(i int) []any {
			if !keep(i) {
				return nil
			}
			model := c.Model
			if o.Model[i] != nil {
				model = *o.Model[i]
			}
			return []any{o.EventID[i], model, o.PredictionID[i], t0.Add(time.Duration(o.TS[i]) * time.Millisecond),
				o.Label[i], o.Value[i], "t", int32(0), int64(i), time.Now()}
		})
}

// insertBatch sends one batch of insert with the rows row(0) … row(n-1);
// a nil row is left out.
func insertBatch(t testing.TB, conn driver.Conn, insert string, n int, row func(i int) []any) {
	t.Helper()
	b, err := conn.PrepareBatch(context.Background(), insert)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if r := row(i); r != nil {
			if err := b.Append(r...); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
}

func closeRel(got, want float64) bool {
	return testcheck.WithinRel(got, want, relTol, 1e-12)
}

func compare(t *testing.T, res Result, c goldenCase) {
	t.Helper()
	e := c.Expected
	if res.Inferences != e.Inferences || res.Labelled != e.Labelled {
		t.Errorf("inferences/labelled = %d/%d, want %d/%d", res.Inferences, res.Labelled, e.Inferences, e.Labelled)
	}
	if !closeRel(res.LabelCoverage, e.LabelCoverage) {
		t.Errorf("label coverage = %.17g, want %.17g", res.LabelCoverage, e.LabelCoverage)
	}
	for i, got := range []float64{res.LabelDelay.P50, res.LabelDelay.P90, res.LabelDelay.P99} {
		if !closeRel(got, e.LabelDelay[i]) {
			t.Errorf("label delay quantile %d = %.17g s, want %.17g s", i, got, e.LabelDelay[i])
		}
	}
	if len(res.Metrics) != len(e.Metrics) {
		t.Errorf("%d metrics, want %d: %+v", len(res.Metrics), len(e.Metrics), res.Metrics)
	}
	for name, want := range e.Metrics {
		got, ok := res.Metric(name)
		if !ok {
			t.Errorf("metric %s missing", name)
			continue
		}
		if got.Status != StatusOK {
			t.Errorf("%s: status %s", name, got.Status)
		}
		if got.Samples != want.Samples {
			t.Errorf("%s samples = %d, want %d", name, got.Samples, want.Samples)
		}
		if !closeRel(got.Value, want.Value) {
			t.Errorf("%s = %.17g, sklearn %.17g (rel err %.3g)", name, got.Value, want.Value, math.Abs(got.Value-want.Value)/math.Abs(want.Value))
		}
	}
}

func (c goldenCase) options(horizon time.Duration) Options {
	return Options{Task: c.Task, PositiveLabel: c.PositiveLabel, Threshold: c.Threshold, Horizon: horizon}
}

// TestGoldenAgainstSklearn inserts the golden datasets (label corrections,
// labels beyond the horizon, producer duplicates, clock skew, another
// model's outcomes, rows outside the window) and checks every metric,
// the coverage and the delay quantiles against scikit-learn.
func TestGoldenAgainstSklearn(t *testing.T) {
	g := loadGolden(t)
	conn := openDB(t)
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-48 * time.Hour)
	w := Span{Start: t0, End: t0.Add(time.Duration(g.WindowMS) * time.Millisecond)}
	horizon := time.Duration(g.HorizonMS) * time.Millisecond
	for _, c := range g.Cases {
		insertInferences(t, conn, c, t0)
		insertOutcomes(t, conn, c, t0, func(int) bool { return true })
	}
	for _, c := range g.Cases {
		t.Run(c.Name, func(t *testing.T) {
			res, err := Compute(context.Background(), conn, c.Model, w, c.options(horizon))
			if err != nil {
				t.Fatal(err)
			}
			compare(t, res, c)
			names := Names(c.options(horizon))
			for i, m := range res.Metrics {
				if m.Name != names[i] {
					t.Errorf("metric %d is %s, Names says %s", i, m.Name, names[i])
				}
			}

			// Without a horizon the late labels count too: more labelled rows.
			all, err := Compute(context.Background(), conn, c.Model, w, c.options(0))
			if err != nil {
				t.Fatal(err)
			}
			if all.Labelled <= res.Labelled || all.Inferences != res.Inferences {
				t.Errorf("no horizon: labelled %d of %d, with horizon %d of %d", all.Labelled, all.Inferences, res.Labelled, res.Inferences)
			}

			// Buckets of 10 minutes add up to the window.
			bs, err := Buckets(context.Background(), conn, c.Model, w, 10*time.Minute, c.options(horizon))
			if err != nil {
				t.Fatal(err)
			}
			var inf, lab int64
			for _, b := range bs {
				inf, lab = inf+b.Inferences, lab+b.Labelled
			}
			first := Names(c.options(horizon))[0]
			if len(bs) != 6 || inf != res.Inferences || lab != res.Labelled || len(Values(bs, first)) != 6 || math.IsNaN(Values(bs, first)[5]) {
				t.Errorf("buckets: %d, %d inferences, %d labelled", len(bs), inf, lab)
			}

			// One version only.
			want := map[string]bool{}
			for i, id := range c.Inferences.EventID {
				if ts := c.Inferences.TS[i]; ts >= 0 && ts < g.WindowMS && c.Inferences.Version[i] == "v2" {
					want[id] = true
				}
			}
			opts := c.options(horizon)
			opts.Version = "v2"
			v2, err := Compute(context.Background(), conn, c.Model, w, opts)
			if err != nil {
				t.Fatal(err)
			}
			if v2.Inferences != int64(len(want)) || v2.Version != "v2" {
				t.Errorf("version v2: %d inferences, want %d", v2.Inferences, len(want))
			}
		})
	}
}

// TestLateLabels is the late-label case on the binary dataset:
// the window is first computed on the labels present, then corrected when
// the rest arrive; coverage rises, both computations stay in
// performance_results and performance_latest shows the second.
func TestLateLabels(t *testing.T) {
	g := loadGolden(t)
	c := g.Cases[0]
	if c.PositiveLabel == "" {
		t.Fatalf("case %s is not binary", c.Name)
	}
	conn := openDB(t)
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-48 * time.Hour)
	w := Span{Start: t0, End: t0.Add(time.Duration(g.WindowMS) * time.Millisecond)}
	opts := c.options(time.Duration(g.HorizonMS) * time.Millisecond)
	insertInferences(t, conn, c, t0)
	// Labels known 30 minutes after the window ended.
	early := func(i int) bool { return c.Outcomes.TS[i] < g.WindowMS+30*60_000 }
	insertOutcomes(t, conn, c, t0, early)
	first, err := Compute(ctx, conn, c.Model, w, opts)
	if err != nil {
		t.Fatal(err)
	}
	if first.Labelled == 0 || !(first.LabelCoverage < c.Expected.LabelCoverage) {
		t.Fatalf("early coverage %.3f, want in (0, %.3f)", first.LabelCoverage, c.Expected.LabelCoverage)
	}
	insertOutcomes(t, conn, c, t0, func(i int) bool { return !early(i) })
	second, err := Compute(ctx, conn, c.Model, w, opts)
	if err != nil {
		t.Fatal(err)
	}
	compare(t, second, c)
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	if err := Write(ctx, conn, at, first); err != nil {
		t.Fatal(err)
	}
	if err := Write(ctx, conn, at.Add(time.Hour), second); err != nil {
		t.Fatal(err)
	}
	var (
		value, coverage float64
		samples, comps  uint64
		computed        time.Time
	)
	if err := conn.QueryRow(ctx, "SELECT value, samples, label_coverage, computed_at, computations FROM performance_latest WHERE model_id = 'bin' AND metric = 'roc_auc'").
		Scan(&value, &samples, &coverage, &computed, &comps); err != nil {
		t.Fatal(err)
	}
	auc, _ := second.Metric(MetricROCAUC)
	if value != auc.Value || int64(samples) != auc.Samples || coverage != second.LabelCoverage || !computed.Equal(at.Add(time.Hour)) || comps != 2 {
		t.Errorf("latest = %v/%d/%v/%v/%d, want %v/%d/%v/%v/2", value, samples, coverage, computed, comps, auc.Value, auc.Samples, second.LabelCoverage, at.Add(time.Hour))
	}
	var rows uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM performance_results WHERE model_id = 'bin'").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	// Two computations of 7 metrics, coverage and 3 delay quantiles.
	if rows != 2*(7+1+3) {
		t.Errorf("performance_results rows = %d, want %d", rows, 2*(7+1+3))
	}
}

// TestEmptyWindow: a window without inferences or labels reports every
// metric insufficient, never a number.
func TestEmptyWindow(t *testing.T) {
	conn := openDB(t)
	t0 := time.Now().UTC().Truncate(time.Hour)
	for _, opts := range []Options{
		{Task: Classification, PositiveLabel: "yes"},
		{Task: Classification},
		{Task: Regression},
	} {
		res, err := Compute(context.Background(), conn, "nobody", Span{Start: t0, End: t0.Add(time.Hour)}, opts)
		if err != nil {
			t.Fatal(err)
		}
		if res.Inferences != 0 || !math.IsNaN(res.LabelCoverage) || !math.IsNaN(res.LabelDelay.P50) || len(res.Metrics) != len(Names(opts)) {
			t.Errorf("%+v: %+v", opts, res)
		}
		for _, m := range res.Metrics {
			if m.Status != StatusInsufficient || !math.IsNaN(m.Value) {
				t.Errorf("%s: %+v", m.Name, m)
			}
		}
		if err := Write(context.Background(), conn, time.Now(), res); err != nil {
			t.Errorf("Write of an empty result: %v", err)
		}
	}
}

// TestMacroByHand checks Macro against a confusion matrix worked out on
// paper: classes a, b, c (c never true).
//
//	true a: 3 → a, 1 → b     true b: 2 → b, 2 → c
//
// a: tp 3, fp 0, fn 1 → P 1, R 3/4, F1 6/7
// b: tp 2, fp 1, fn 2 → P 2/3, R 1/2, F1 4/7
// c: tp 0, fp 2, fn 0 → P 0, R 0 (0/0), F1 0
func TestMacroByHand(t *testing.T) {
	ms := Macro([]Cell{{"a", "a", 3}, {"a", "b", 1}, {"b", "b", 2}, {"b", "c", 2}})
	want := map[string]float64{
		MetricAccuracy:  5.0 / 8,
		MetricPrecision: (1 + 2.0/3 + 0) / 3,
		MetricRecall:    (0.75 + 0.5 + 0) / 3,
		MetricF1:        (6.0/7 + 4.0/7 + 0) / 3,
	}
	for _, m := range ms {
		if !closeRel(m.Value, want[m.Name]) || m.Samples != 8 {
			t.Errorf("%s = %v (n %d), want %v (n 8)", m.Name, m.Value, m.Samples, want[m.Name])
		}
	}
}

func TestValidate(t *testing.T) {
	err := Options{Task: "ranking", Threshold: 2, Horizon: -time.Second}.Validate()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %v, want ErrInvalid", err)
	}
	for _, want := range []string{"task:", "threshold:", "horizon:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if err := (Options{Task: Regression, PositiveLabel: "x"}).Validate(); err == nil {
		t.Error("regression with a positive label accepted")
	}
	if err := (Options{Task: Classification}).Validate(); err != nil {
		t.Error(err)
	}
}
