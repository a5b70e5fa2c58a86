package perf

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftwatch/driftwatch/monitor/cbpe"
	"github.com/driftwatch/driftwatch/monitor/dle"
)

// cbpeGolden is monitor/cbpe's golden file: NannyML's CBPE numbers on
// seeded data (monitor/cbpe/testdata/golden.py).
type cbpeGolden struct {
	Cases []struct {
		Name      string  `json:"name"`
		Threshold float64 `json:"threshold"`
		Reference struct {
			Score     []float64 `json:"score"`
			Positive  []int     `json:"positive"`
			Predicted []int     `json:"predicted"`
		} `json:"reference"`
		Window struct {
			Score     []float64 `json:"score"`
			Predicted []int     `json:"predicted"`
		} `json:"window"`
		NeedsCalibration bool `json:"needs_calibration"`
		Estimated        map[string]struct {
			Value, Lower, Upper float64
			SamplingError       float64 `json:"sampling_error"`
		} `json:"estimated"`
	} `json:"cases"`
}

// insertScored inserts score-only inferences of model at t0 + i ms and,
// where labels is not nil, an outcome for each a minute later.
func insertScored(t testing.TB, conn driver.Conn, model string, t0 time.Time, scores []float64, labels []int) {
	t.Helper()
	id := func(i int) string { return fmt.Sprintf("%s-%d-%d", model, t0.UnixMilli(), i) }
	insertBatch(t, conn, "INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, features_numeric, features_categorical, missing_features, prediction_label, prediction_score, prediction_value, prediction_probabilities, segment, latency_ms, kafka_topic, kafka_partition, kafka_offset, ingested_at)",
		len(scores), func(i int) []any {
			s := scores[i]
			return []any{id(i), model, "v1", id(i), t0.Add(time.Duration(i) * time.Millisecond), map[string]float64{}, map[string]string{}, []string{},
				(*string)(nil), &s, (*float64)(nil), map[string]float64{}, map[string]string{}, (*float64)(nil), "t", int32(0), int64(i), time.Now()}
		})
	if labels == nil {
		return
	}
	insertBatch(t, conn, "INSERT INTO outcomes (event_id, model_id, prediction_id, timestamp, actual_label, actual_value, kafka_topic, kafka_partition, kafka_offset, ingested_at)",
		len(labels), func(i int) []any {
			l := fmt.Sprint(labels[i])
			return []any{"o-" + id(i), model, id(i), t0.Add(time.Duration(i)*time.Millisecond + time.Minute), &l, (*float64)(nil), "t", int32(0), int64(i), time.Now()}
		})
}

// TestEstimateAgainstNannyML runs CBPE end to end in ClickHouse: the
// labelled reference rows from ReferenceRows, cbpe.Fit, and Estimate's
// sums over an unlabelled window, compared with NannyML's estimates and
// bands (1e-9; ROC AUC 1e-6, NannyML rounds its cumulative sums).
func TestEstimateAgainstNannyML(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "cbpe", "testdata", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g cbpeGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	conn := openDB(t)
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-48 * time.Hour)
	refSpan := Span{Start: t0, End: t0.Add(time.Hour)}
	cur := Span{Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)}
	for _, c := range g.Cases {
		t.Run(c.Name, func(t *testing.T) {
			model := "cbpe-" + c.Name
			insertScored(t, conn, model, refSpan.Start, c.Reference.Score, c.Reference.Positive)
			insertScored(t, conn, model, cur.Start, c.Window.Score, nil)
			opts := Options{Task: Classification, PositiveLabel: "1", Threshold: c.Threshold}
			rows, err := ReferenceRows(ctx, conn, model, refSpan, opts, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(c.Reference.Score) {
				t.Fatalf("%d reference rows, want %d", len(rows), len(c.Reference.Score))
			}
			ref, err := cbpe.Fit(rows)
			if err != nil {
				t.Fatal(err)
			}
			if ref.Calibrated != c.NeedsCalibration {
				t.Fatalf("calibrated = %v, want %v", ref.Calibrated, c.NeedsCalibration)
			}
			sums, err := Estimate(ctx, conn, model, cur, opts, ref)
			if err != nil {
				t.Fatal(err)
			}
			if sums.N != float64(len(c.Window.Score)) {
				t.Fatalf("estimated on %v rows, want %d", sums.N, len(c.Window.Score))
			}
			for _, e := range ref.Estimate(sums) {
				want := c.Estimated[e.Name]
				tol := 1e-9
				if e.Name == cbpe.ROCAUC {
					tol = 1e-6
				}
				if !(math.Abs(e.Value-want.Value) <= tol) || !(math.Abs(e.Lower-want.Lower) <= tol) || !(math.Abs(e.Upper-want.Upper) <= tol) {
					t.Errorf("estimated %s = %.12g [%.12g, %.12g], NannyML %.12g [%.12g, %.12g]", e.Name, e.Value, e.Lower, e.Upper, want.Value, want.Lower, want.Upper)
				}
			}
			ms := EstimatedMetrics(ref.Estimate(sums), int64(sums.N))
			if len(ms) != 3*len(cbpe.Metrics) || ms[0].Name != "estimated_accuracy" || ms[1].Name != "estimated_accuracy_lower" {
				t.Errorf("estimated metric rows: %+v", ms)
			}
			// A capped reference is a fixed sample.
			capped, err := ReferenceRows(ctx, conn, model, refSpan, opts, 100)
			if err != nil {
				t.Fatal(err)
			}
			again, err := ReferenceRows(ctx, conn, model, refSpan, opts, 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(capped) != 100 || len(again) != 100 || capped[0] != again[0] || capped[99] != again[99] {
				t.Errorf("capped reference: %d then %d rows, not the same sample", len(capped), len(again))
			}
		})
	}
}

// insertProbabilities inserts multiclass inferences of model at t0 + i ms
// (probabilities and predicted label) and, where truth is not nil, an
// outcome for each a minute later.
func insertProbabilities(t testing.TB, conn driver.Conn, model string, t0 time.Time, probs []map[string]float64, pred, truth []string) {
	t.Helper()
	id := func(i int) string { return fmt.Sprintf("%s-%d-%d", model, t0.UnixMilli(), i) }
	insertBatch(t, conn, "INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, features_numeric, features_categorical, missing_features, prediction_label, prediction_score, prediction_value, prediction_probabilities, segment, latency_ms, kafka_topic, kafka_partition, kafka_offset, ingested_at)",
		len(probs), func(i int) []any {
			l := pred[i]
			return []any{id(i), model, "v1", id(i), t0.Add(time.Duration(i) * time.Millisecond), map[string]float64{}, map[string]string{}, []string{},
				&l, (*float64)(nil), (*float64)(nil), probs[i], map[string]string{}, (*float64)(nil), "t", int32(0), int64(i), time.Now()}
		})
	if truth == nil {
		return
	}
	insertBatch(t, conn, "INSERT INTO outcomes (event_id, model_id, prediction_id, timestamp, actual_label, actual_value, kafka_topic, kafka_partition, kafka_offset, ingested_at)",
		len(truth), func(i int) []any {
			l := truth[i]
			return []any{"o-" + id(i), model, id(i), t0.Add(time.Duration(i)*time.Millisecond + time.Minute), &l, (*float64)(nil), "t", int32(0), int64(i), time.Now()}
		})
}

// TestEstimateMulticlassAgainstNannyML is TestEstimateAgainstNannyML for
// the multiclass cases: MulticlassReferenceRows, cbpe.FitMulticlass and
// EstimateMulticlass's per-class sums in ClickHouse against NannyML.
func TestEstimateMulticlassAgainstNannyML(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "cbpe", "testdata", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Multiclass []struct {
			Name      string `json:"name"`
			Reference struct {
				Probs     []map[string]float64 `json:"probs"`
				Truth     []string             `json:"truth"`
				Predicted []string             `json:"predicted"`
			} `json:"reference"`
			Window struct {
				Probs     []map[string]float64 `json:"probs"`
				Predicted []string             `json:"predicted"`
			} `json:"window"`
			Estimated map[string]struct {
				Value, Lower, Upper float64
			} `json:"estimated"`
		} `json:"multiclass"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Multiclass) == 0 {
		t.Fatal("no multiclass golden cases")
	}
	conn := openDB(t)
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-48 * time.Hour)
	refSpan := Span{Start: t0, End: t0.Add(time.Hour)}
	cur := Span{Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)}
	for _, c := range g.Multiclass {
		t.Run(c.Name, func(t *testing.T) {
			model := "cbpe-" + c.Name
			insertProbabilities(t, conn, model, refSpan.Start, c.Reference.Probs, c.Reference.Predicted, c.Reference.Truth)
			insertProbabilities(t, conn, model, cur.Start, c.Window.Probs, c.Window.Predicted, nil)
			opts := Options{Task: Classification}
			rows, err := MulticlassReferenceRows(ctx, conn, model, refSpan, opts, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(c.Reference.Probs) {
				t.Fatalf("%d reference rows, want %d", len(rows), len(c.Reference.Probs))
			}
			ref, err := cbpe.FitMulticlass(rows)
			if err != nil {
				t.Fatal(err)
			}
			sums, err := EstimateMulticlass(ctx, conn, model, cur, opts, ref)
			if err != nil {
				t.Fatal(err)
			}
			if sums.N != float64(len(c.Window.Probs)) {
				t.Fatalf("estimated on %v rows, want %d", sums.N, len(c.Window.Probs))
			}
			for _, e := range ref.Estimate(sums) {
				want := c.Estimated[e.Name]
				tol := 1e-9
				if e.Name == cbpe.ROCAUC {
					tol = 1e-6
				}
				if !(math.Abs(e.Value-want.Value) <= tol) || !(math.Abs(e.Lower-want.Lower) <= tol) || !(math.Abs(e.Upper-want.Upper) <= tol) {
					t.Errorf("estimated %s = %.12g [%.12g, %.12g], NannyML %.12g [%.12g, %.12g]", e.Name, e.Value, e.Lower, e.Upper, want.Value, want.Lower, want.Upper)
				}
			}
		})
	}
}

// TestEstimateRegressionAgainstSklearn runs DLE through ClickHouse:
// RegressionReferenceRows, dle.Fit and EstimateRegression's clipped sums,
// against monitor/dle's golden numbers (scikit-learn's Ridge), 1e-9.
func TestEstimateRegressionAgainstSklearn(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "dle", "testdata", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []struct {
			Name      string `json:"name"`
			Reference struct {
				Features   []map[string]float64 `json:"features"`
				Prediction []float64            `json:"prediction"`
				Truth      []float64            `json:"truth"`
			} `json:"reference"`
			Window struct {
				Features   []map[string]float64 `json:"features"`
				Prediction []float64            `json:"prediction"`
			} `json:"window"`
			Estimated map[string]struct{ Value, Lower, Upper float64 } `json:"estimated"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &g); err != nil || len(g.Cases) == 0 {
		t.Fatalf("dle golden cases: %v", err)
	}
	conn := openDB(t)
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-48 * time.Hour)
	refSpan := Span{Start: t0, End: t0.Add(time.Hour)}
	cur := Span{Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)}
	insert := func(model string, at time.Time, feats []map[string]float64, pred []float64, truth []float64) {
		id := func(i int) string { return fmt.Sprintf("%s-%d-%d", model, at.UnixMilli(), i) }
		insertBatch(t, conn, "INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, features_numeric, prediction_value, kafka_topic, kafka_partition, kafka_offset, ingested_at)",
			len(pred), func(i int) []any {
				p := pred[i]
				return []any{id(i), model, "v1", id(i), at.Add(time.Duration(i) * time.Millisecond), feats[i], &p, "t", int32(0), int64(i), time.Now()}
			})
		if truth == nil {
			return
		}
		insertBatch(t, conn, "INSERT INTO outcomes (event_id, model_id, prediction_id, timestamp, actual_value, kafka_topic, kafka_partition, kafka_offset, ingested_at)",
			len(truth), func(i int) []any {
				v := truth[i]
				return []any{"o-" + id(i), model, id(i), at.Add(time.Duration(i)*time.Millisecond + time.Minute), &v, "t", int32(0), int64(i), time.Now()}
			})
	}
	for _, c := range g.Cases {
		t.Run(c.Name, func(t *testing.T) {
			model := "dle-" + c.Name
			insert(model, refSpan.Start, c.Reference.Features, c.Reference.Prediction, c.Reference.Truth)
			insert(model, cur.Start, c.Window.Features, c.Window.Prediction, nil)
			opts := Options{Task: Regression}
			rows, err := RegressionReferenceRows(ctx, conn, model, refSpan, opts, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(c.Reference.Truth) {
				t.Fatalf("%d reference rows, want %d", len(rows), len(c.Reference.Truth))
			}
			m, err := dle.Fit(rows)
			if err != nil {
				t.Fatal(err)
			}
			sums, err := EstimateRegression(ctx, conn, model, cur, opts, m)
			if err != nil {
				t.Fatal(err)
			}
			if sums.N != float64(len(c.Window.Prediction)) {
				t.Fatalf("estimated on %v rows, want %d", sums.N, len(c.Window.Prediction))
			}
			for _, e := range m.Estimate(sums) {
				want := c.Estimated[e.Name]
				if !closeRel(e.Value, want.Value) || !closeRel(e.Lower, want.Lower) || !closeRel(e.Upper, want.Upper) {
					t.Errorf("estimated %s = %.12g [%.12g, %.12g], sklearn %.12g [%.12g, %.12g]", e.Name, e.Value, e.Lower, e.Upper, want.Value, want.Lower, want.Upper)
				}
			}
		})
	}
}
