package retrain

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/loadgen"
	"github.com/driftwatch/driftwatch/schemas"
)

func TestSplitRows(t *testing.T) {
	for _, tt := range []struct {
		name               string
		labelled, inWindow int64
		want               int64
		wantErr            string
	}{
		{name: "window under the share", labelled: 10000, inWindow: 1000, want: 1000},
		{name: "window over the share: capped at 20%", labelled: 10000, inWindow: 10000, want: 2000},
		{name: "small window raised to the minimum", labelled: 10000, inWindow: 50, want: 200},
		{name: "too little for both splits", labelled: 900, inWindow: 900, wantErr: "needs at least 200"},
		{name: "nothing", labelled: 0, inWindow: 0, wantErr: "needs at least 200 and training 1000"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := splitRows(tt.labelled, tt.inWindow, 200, 1000, 0.2)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

// newModel loads a new model's labelled traffic into a fresh world: one
// inference a second for span, ending at end, labels after exponential
// delays of mean 1m, with changes (ParseChange syntax).
func newModel(t *testing.T, span time.Duration, end time.Time, changes ...string) *world {
	t.Helper()
	w := openWorld(t)
	cfg := loadgen.DefaultConfig()
	cfg.Seed = 11
	cfg.NumericFeatures, cfg.CategoricalFeatures = 3, 1
	cfg.Start, cfg.Step = end.Add(-span), time.Second
	cfg.BusinessMetrics.Enabled = false
	for _, c := range changes {
		ch, err := loadgen.ParseChange(c, cfg.Start)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Changes = append(cfg.Changes, ch)
	}
	w.load(t, cfg, int64(span/cfg.Step))
	return w
}

// defaultTrainer is a trainer on the default model settings (but 300
// bootstrap resamples) whose clock stands at now.
func (w *world) defaultTrainer(t *testing.T, now time.Time) *Trainer {
	t.Helper()
	mc := DefaultModelConfig()
	mc.Resamples = 300
	tr, err := New(Options{Conn: w.conn, Events: &eventLog{}, Now: func() time.Time { return now },
		Settings: Settings{Defaults: mc, DataDir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func manual(model string, at time.Time) schemas.RetrainTrigger {
	return schemas.RetrainTrigger{TriggerID: "manual-" + model, ModelID: model, Reason: schemas.TriggerManual, CreatedAt: at, DedupKey: "manual", Policy: "manual"}
}

// TestWindowsFromData: on the default settings, a model two hours old is
// retrained and judged (maturity from its label delays, the evaluation
// window a fifth of its labelled rows), and one ten minutes old fails with
// the rows it has and needs.
func TestWindowsFromData(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)

	t.Run("two hours, concept drift in the second: judged", func(t *testing.T) {
		w := newModel(t, 2*time.Hour, now, "concept_drift@+1h")
		tr := w.defaultTrainer(t, now)
		r, err := tr.RunTrigger(ctx, manual("model-0", now))
		if err != nil || r == nil {
			t.Fatalf("run: %v, %v", r, err)
		}
		t.Logf("run: %s, %s; windows [%s, %s, %s); rows train %d val %d test %d eval %d; metrics %v champion %v",
			r.Status, r.DecisionReason, r.TrainingFrom, r.EvalFrom, r.EvalTo, r.RowsTrain, r.RowsValidation, r.RowsTest, r.RowsEval, r.Metrics, r.ChampionMetrics)
		if r.Status != RunSucceeded && r.Status != RunRejected {
			t.Fatalf("status %s (%s), want succeeded or rejected", r.Status, r.DecisionReason)
		}
		// Maturity is the p99 label delay: about 4.6 minutes for
		// exponential delays of mean 1m, not the old fixed hour.
		if m := now.Sub(r.EvalTo); !(m >= 3*time.Minute && m <= 7*time.Minute) {
			t.Errorf("maturity %s, want the p99 label delay (about 4.6m)", m)
		}
		matured := w.count(t, fmt.Sprintf("SELECT count() FROM inferences_labeled WHERE timestamp < %s", chsql.Time(r.EvalTo)))
		if want := uint64(float64(matured) * DefaultEvalMaxShare); r.RowsEval != want {
			t.Errorf("evaluation rows %d, want a fifth of the %d matured labelled rows (%d)", r.RowsEval, matured, want)
		}
		if got := r.RowsTrain + r.RowsValidation + r.RowsTest; got != matured-r.RowsEval {
			t.Errorf("training range rows %d, want the other %d", got, matured-r.RowsEval)
		}
		if !r.EvalFrom.After(now.Add(-time.Hour)) {
			t.Errorf("evaluation window starts at %s, before the drifted hour", r.EvalFrom)
		}
		for _, ms := range []map[string]float64{r.Metrics, r.ChampionMetrics} {
			if auc := ms["roc_auc"]; !(auc > 0 && auc < 1) {
				t.Errorf("roc_auc %v, want a number in (0, 1)", auc)
			}
		}
		if !strings.Contains(r.DecisionReason, "roc_auc") {
			t.Errorf("decision reason %q does not name the metric", r.DecisionReason)
		}
	})

	t.Run("ten minutes: fails with the rows available and needed", func(t *testing.T) {
		w := newModel(t, 10*time.Minute, now)
		tr := w.defaultTrainer(t, now)
		r, err := tr.RunTrigger(ctx, manual("model-0", now))
		if err != nil || r == nil {
			t.Fatalf("run: %v, %v", r, err)
		}
		t.Logf("run: %s: %s", r.Status, r.DecisionReason)
		all := w.count(t, "SELECT count() FROM inferences_labeled")
		matured := w.count(t, fmt.Sprintf("SELECT count() FROM inferences_labeled WHERE timestamp < %s", chsql.Time(r.EvalTo)))
		want := []string{fmt.Sprintf("%d labelled rows, %d of them matured", all, matured), ", the p99 label delay)",
			"the evaluation window needs at least 200 and training 1000 (1200 in all)", "at the rate of the last 10m", "enough will have matured at about"}
		if r.Status != RunFailed {
			t.Fatalf("status %s, want failed", r.Status)
		}
		for _, s := range want {
			if !strings.Contains(r.DecisionReason, s) {
				t.Errorf("reason %q does not say %q", r.DecisionReason, s)
			}
		}
		if all < 500 || matured >= all {
			t.Errorf("%d labelled rows, %d matured: want about 600, the newest not yet matured", all, matured)
		}
	})
}
