package model

import (
	"errors"
	"math"
	"testing"

	"github.com/driftwatch/driftwatch/internal/testcheck"
)

// TestMetricsByHand: y = 1 1 0 0 1, p = .9 .4 .6 .2 .5. At p ≥ 0.5: TP 2
// (.9, .5), FN 1 (.4), FP 1 (.6), TN 1 (.2). Pairs (pos, neg) ranked right:
// (.9>.6, .9>.2, .4>.2, .5>.2) = 4 of 6 → AUC 2/3.
func TestMetricsByHand(t *testing.T) {
	y := []float64{1, 1, 0, 0, 1}
	p := []float64{.9, .4, .6, .2, .5}
	brier := (.01 + .36 + .36 + .04 + .25) / 5
	logloss := -(math.Log(.9) + math.Log(.4) + math.Log(.4) + math.Log(.8) + math.Log(.5)) / 5
	for _, tc := range []struct {
		m    Metric
		want float64
	}{
		{AUC, 4.0 / 6}, {LogLoss, logloss}, {Brier, brier}, {Accuracy, 3.0 / 5}, {Precision, 2.0 / 3},
		{Recall, 2.0 / 3}, {F1, 2.0 / 3}, {RMSE, math.Sqrt(brier)}, {MAE, (.1 + .6 + .6 + .2 + .5) / 5},
		{R2, 1 - brier/0.24},
	} {
		t.Run(string(tc.m), func(t *testing.T) {
			got, err := tc.m.Compute(y, p)
			if err != nil || !testcheck.Within(got, tc.want, 1e-12) {
				t.Errorf("= %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestMetricEdgeCases(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Metric
		y, p []float64
		want float64
		err  error
	}{
		{"auc one class", AUC, []float64{1, 1}, []float64{.2, .3}, 0, ErrUndefined},
		{"precision without predicted positives", Precision, []float64{1, 0}, []float64{.1, .2}, 0, nil},
		{"recall without positives", Recall, []float64{0, 0}, []float64{.7, .2}, 0, nil},
		{"f1 zero", F1, []float64{1, 0}, []float64{.1, .9}, 0, nil},
		{"log loss clipped", LogLoss, []float64{1}, []float64{0}, -math.Log(0x1p-52), nil},
		{"r2 constant perfect", R2, []float64{2, 2}, []float64{2, 2}, 1, nil},
		{"r2 constant imperfect", R2, []float64{2, 2}, []float64{2, 3}, 0, nil},
		{"label not binary", Brier, []float64{2}, []float64{.5}, 0, ErrInput},
		{"length", RMSE, []float64{1, 2}, []float64{1}, 0, ErrInput},
		{"empty", MAE, nil, nil, 0, ErrInput},
		{"nan", MAE, []float64{1}, []float64{math.NaN()}, 0, ErrInput},
		{"unknown", Metric("gini"), []float64{1}, []float64{1}, 0, ErrInput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.m.Compute(tc.y, tc.p)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Errorf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || !testcheck.Within(got, tc.want, 1e-12) {
				t.Errorf("= %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestEvaluateSkipsUndefined(t *testing.T) {
	got, err := Evaluate(Classification, []float64{1, 1}, []float64{.8, .3})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got[AUC]; ok || len(got) != 6 || got[Accuracy] != 0.5 {
		t.Errorf("Evaluate = %v", got)
	}
	reg, err := Evaluate(Regression, []float64{1, 2, 3}, []float64{1, 2, 4})
	if err != nil || len(reg) != 3 || reg[MAE] != 1.0/3 {
		t.Errorf("Evaluate = %v, %v", reg, err)
	}
}

func TestBootstrapDeterministicAndDirection(t *testing.T) {
	ref := loadReference(t)
	y, weak, strong := ref.TestValues, ref.Ridge.WeakTestPred, ref.Ridge.TestPred
	a, err := BootstrapDiff(RMSE, y, weak, strong, BootstrapOptions{Resamples: 200, Seed: 9, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := BootstrapDiff(RMSE, y, weak, strong, BootstrapOptions{Resamples: 200, Seed: 9, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("workers changed the result:\n%+v\n%+v", a, b)
	}
	// RMSE falls for the better model: the difference is negative, the
	// improvement positive.
	if !(a.Diff < 0 && a.Hi < 0 && a.Improvement() > 0 && a.ChallengerBetter(0.01)) {
		t.Errorf("strong challenger not recognised: %+v", a)
	}
	if a.ChallengerBetter(10) {
		t.Error("a margin of 10 was met")
	}
	rev, err := BootstrapDiff(RMSE, y, strong, weak, BootstrapOptions{Resamples: 200, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	if rev.ChallengerBetter(0) || !rev.ExcludesZero() {
		t.Errorf("weak challenger: %+v", rev)
	}
	same, err := BootstrapDiff(RMSE, y, strong, strong, BootstrapOptions{Resamples: 50, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	if same.ExcludesZero() || same.ChallengerBetter(0) {
		t.Errorf("identical models: %+v", same)
	}
}

func TestBootstrapUndefinedResamples(t *testing.T) {
	// One positive in 20 rows: about e^-1 of the resamples miss it, and
	// ROC AUC is undefined on those.
	y := make([]float64, 20)
	y[0] = 1
	p := make([]float64, 20)
	for i := range p {
		p[i] = float64(i) / 20
	}
	ci, err := BootstrapDiff(AUC, y, p, p, BootstrapOptions{Resamples: 500, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if ci.Undefined < 100 || ci.Undefined > 270 {
		t.Errorf("undefined resamples %d, want about 500/e ≈ 179", ci.Undefined)
	}
	if _, err := BootstrapDiff(AUC, y, p, p[:3], BootstrapOptions{}); !errors.Is(err, ErrInput) {
		t.Errorf("length mismatch: %v", err)
	}
}
