package perf

import (
	"context"
	"testing"
	"time"
)

// TestShadowRowsExcluded: every golden case again with a shadow copy of
// each inference (a challenger's answer to the same request: same
// prediction_id, so the same label, another version and an inverted
// prediction, docs/serve.md): the model's metrics are still scikit-learn's.
func TestShadowRowsExcluded(t *testing.T) {
	g := loadGolden(t)
	conn := openDB(t)
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-48 * time.Hour)
	w := Span{Start: t0, End: t0.Add(time.Duration(g.WindowMS) * time.Millisecond)}
	horizon := time.Duration(g.HorizonMS) * time.Millisecond
	for _, c := range g.Cases {
		insertInferences(t, conn, c, t0)
		insertOutcomes(t, conn, c, t0, func(int) bool { return true })
		in := c.Inferences
		insertBatch(t, conn, "INSERT INTO inferences (event_id, model_id, model_version, prediction_id, timestamp, prediction_label, prediction_score, prediction_value, shadow, ingested_at)",
			len(in.EventID), func(i int) []any {
				var score, value *float64
				if in.Score[i] != nil {
					s := 1 - *in.Score[i]
					score = &s
				}
				if in.Value[i] != nil {
					v := *in.Value[i] + 100
					value = &v
				}
				label := (*string)(nil)
				if in.Label[i] != nil {
					l := "shadow-" + *in.Label[i]
					label = &l
				}
				return []any{"shadow-" + in.EventID[i], c.Model, "v-shadow", in.PredictionID[i], t0.Add(time.Duration(in.TS[i]) * time.Millisecond),
					label, score, value, true, time.Now()}
			})
	}
	for _, c := range g.Cases {
		t.Run(c.Name, func(t *testing.T) {
			res, err := Compute(context.Background(), conn, c.Model, w, c.options(horizon))
			if err != nil {
				t.Fatal(err)
			}
			compare(t, res, c)
		})
	}
}
