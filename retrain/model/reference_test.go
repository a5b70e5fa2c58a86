package model

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"slices"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/driftwatch/driftwatch/internal/testcheck"
)

// reference is testdata/reference.json, written by testdata/reference.py
// with numpy and scikit-learn (STYLE.md rule 17). Regenerate it with
//
//	.deps/venv/bin/python retrain/model/testdata/reference.py
type reference struct {
	Generator struct {
		Seed  uint64 `json:"seed"`
		Rows  int    `json:"rows"`
		Train int    `json:"train"`
		TopK  int    `json:"top_k"`
	} `json:"generator"`
	Preprocessor struct {
		Numeric []struct {
			Name      string  `json:"name"`
			Mean      float64 `json:"mean"`
			Std       float64 `json:"std"`
			Indicator bool    `json:"indicator"`
		} `json:"numeric"`
		Categorical []CategoricalFeature `json:"categorical"`
	} `json:"preprocessor"`
	Columns  []string `json:"columns"`
	Logistic struct {
		Coef               []float64          `json:"coef"`
		Intercept          float64            `json:"intercept"`
		NewtonCoef         []float64          `json:"newton_cholesky_coef"`
		NewtonIntercept    float64            `json:"newton_cholesky_intercept"`
		TestProba          []float64          `json:"test_proba"`
		WeakTestProba      []float64          `json:"weak_test_proba"`
		TestMetrics        map[Metric]float64 `json:"test_metrics"`
		NewtonMaxAbsDiffer float64            `json:"newton_cholesky_max_abs_diff"`
	} `json:"logistic"`
	Ridge struct {
		Coef         []float64          `json:"coef"`
		Intercept    float64            `json:"intercept"`
		TestPred     []float64          `json:"test_pred"`
		WeakTestPred []float64          `json:"weak_test_pred"`
		TestMetrics  map[Metric]float64 `json:"test_metrics"`
	} `json:"ridge"`
	TestLabels []float64 `json:"test_labels"`
	TestValues []float64 `json:"test_values"`
	Resamples  []struct {
		Indices []int              `json:"indices"`
		Diff    map[Metric]float64 `json:"diff_strong_minus_weak"`
	} `json:"resamples"`
	BootstrapAUC struct {
		Resamples int     `json:"resamples"`
		Lo        float64 `json:"lo"`
		Hi        float64 `json:"hi"`
		SE        float64 `json:"se"`
	} `json:"bootstrap_auc"`
	Percentiles struct {
		Values []float64 `json:"values"`
		Q      []float64 `json:"q"`
		Want   []float64 `json:"want"`
	} `json:"percentiles"`
	AUCTies []struct {
		Name  string    `json:"name"`
		Y     []float64 `json:"y"`
		Score []float64 `json:"score"`
		AUC   float64   `json:"auc"`
	} `json:"auc_ties"`
}

func loadReference(t testing.TB) *reference {
	t.Helper()
	b, err := os.ReadFile("testdata/reference.json")
	if err != nil {
		t.Fatal(err)
	}
	ref := &reference{}
	if err := json.Unmarshal(b, ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

// referenceData returns the reference rows split into train and test.
func referenceData(t testing.TB, ref *reference) (train, test []row) {
	rows := generateReference(ref.Generator.Seed, ref.Generator.Rows)
	return rows[:ref.Generator.Train], rows[ref.Generator.Train:]
}

// closeTo reports whether got is within tol of want, absolutely for
// |want| ≤ 1 and relatively above.
func closeTo(got, want, tol float64) bool {
	return testcheck.WithinScaled(got, want, tol)
}

var classTarget = Target{Task: Classification, PositiveClass: "yes"}

func TestPreprocessorMatchesReference(t *testing.T) {
	ref := loadReference(t)
	train, _ := referenceData(t, ref)
	recs := buildRecords(t, memory.NewGoAllocator(), train, 4000)
	pp, err := FitPreprocessor(context.Background(), Records(recs...), classTarget,
		PreprocessOptions{TopK: ref.Generator.TopK, MissingIndicators: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(pp.Numeric) != len(ref.Preprocessor.Numeric) {
		t.Fatalf("%d numeric features, want %d", len(pp.Numeric), len(ref.Preprocessor.Numeric))
	}
	for i, want := range ref.Preprocessor.Numeric {
		got := pp.Numeric[i]
		if got.Name != want.Name || !closeTo(got.Mean, want.Mean, 1e-12) || !closeTo(got.Std, want.Std, 1e-12) || got.Indicator != want.Indicator {
			t.Errorf("numeric %d = %+v, want %+v", i, got, want)
		}
	}
	if len(pp.Categorical) != len(ref.Preprocessor.Categorical) {
		t.Fatalf("%d categorical features, want %d", len(pp.Categorical), len(ref.Preprocessor.Categorical))
	}
	for i, want := range ref.Preprocessor.Categorical {
		got := pp.Categorical[i]
		if got.Name != want.Name || !slices.Equal(got.Categories, want.Categories) {
			t.Errorf("categorical %d = %+v, want %+v", i, got, want)
		}
	}
	if got := pp.Columns(); !slices.Equal(got, ref.Columns) {
		t.Errorf("columns = %q, want %q", got, ref.Columns)
	}
}

// Logistic regression against scikit-learn (the claim in docs/trainer.md
// and the package doc): the coefficients are scikit-learn newton-cholesky's
// within logisticCoefTol (absolute up to 1, relative above; measured
// 6.4e-15), and the test ROC AUC is sklearn's within 1e-12. Two AUCs on the
// same 5,000 test rows that rank any pair differently differ by at least
// 1/(positives·negatives) = 1.6e-7, so 1e-12 means the same ranking: identical.
const (
	logisticCoefTol = 1e-13
	logisticAUCTol  = 1e-12
)

// TestLogisticMatchesSklearn checks the coefficients against scikit-learn's
// newton-cholesky optimum within logisticCoefTol, and against its lbfgs
// fit (tol 1e-12, which stops 3e-6 short of the optimum) within the gap
// between the two sklearn solvers plus logisticCoefTol; test probabilities
// (sklearn's are lbfgs's) within that gap, and the test ROC AUC within
// logisticAUCTol. The differences measured are logged.
func TestLogisticMatchesSklearn(t *testing.T) {
	ref := loadReference(t)
	train, test := referenceData(t, ref)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) }) // runs after the records are released
	recs := buildRecords(t, mem, train, 3000)
	testRecs := buildRecords(t, mem, test, len(test))
	for _, workers := range []int{1, 2, 3} {
		t.Run("workers="+string(rune('0'+workers)), func(t *testing.T) {
			m, rep, err := Train(context.Background(), Records(recs...), Config{
				Target:     classTarget,
				Preprocess: PreprocessOptions{TopK: ref.Generator.TopK, MissingIndicators: true},
				Workers:    workers,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("report %+v", rep)
			if rep.Rows != int64(len(train)) || !rep.Converged {
				t.Errorf("rows %d converged %v", rep.Rows, rep.Converged)
			}
			if !slices.Equal(m.Columns, ref.Columns) {
				t.Fatalf("columns = %q, want %q", m.Columns, ref.Columns)
			}
			got := append(append([]float64{}, m.Coef...), m.Intercept)
			lbfgs := append(append([]float64{}, ref.Logistic.Coef...), ref.Logistic.Intercept)
			newton := append(append([]float64{}, ref.Logistic.NewtonCoef...), ref.Logistic.NewtonIntercept)
			solverGap := ref.Logistic.NewtonMaxAbsDiffer
			if !(solverGap > 0 && solverGap < 1e-4) {
				t.Fatalf("reference: lbfgs vs newton-cholesky gap %g, want in (0, 1e-4)", solverGap)
			}
			for i := range got {
				if !closeTo(got[i], newton[i], logisticCoefTol) {
					t.Errorf("coefficient %d (%s) = %.17g, sklearn newton-cholesky %.17g (±%g)", i, colName(m, i), got[i], newton[i], logisticCoefTol)
				}
				if !closeTo(got[i], lbfgs[i], solverGap+logisticCoefTol) {
					t.Errorf("coefficient %d (%s) = %.17g, sklearn lbfgs %.17g (±%g)", i, colName(m, i), got[i], lbfgs[i], solverGap+logisticCoefTol)
				}
			}
			t.Logf("max |Δcoef| vs lbfgs %.3g, vs newton-cholesky %.3g (lbfgs vs newton-cholesky %.3g)",
				testcheck.MaxAbsDiff(got, lbfgs), testcheck.MaxAbsDiff(got, newton), ref.Logistic.NewtonMaxAbsDiffer)

			p, err := m.Predict(testRecs[0], nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("max |Δ test probability| vs sklearn lbfgs %.3g", testcheck.MaxAbsDiff(p, ref.Logistic.TestProba))
			testcheck.AllClose(t, "test probability", p, ref.Logistic.TestProba, solverGap)
			auc, err := AUC.Compute(ref.TestLabels, p)
			if err != nil {
				t.Fatal(err)
			}
			want := ref.Logistic.TestMetrics[AUC]
			if !testcheck.Within(auc, want, logisticAUCTol) {
				t.Errorf("test ROC AUC %.17g, sklearn %.17g: differ by more than %g", auc, want, logisticAUCTol)
			}
			t.Logf("test ROC AUC %.9f, sklearn %.9f, |Δ| %.3g", auc, want, math.Abs(auc-want))
		})
	}
}

func colName(m *Model, i int) string {
	if i < len(m.Columns) {
		return m.Columns[i]
	}
	return "intercept"
}

// Ridge against scikit-learn (docs/trainer.md): both solve the same normal
// equations exactly, so coefficients agree within ridgeTol (absolute up to
// 1, relative above; measured 9.7e-14) and test predictions within ridgeTol
// times their scale.
const ridgeTol = 1e-12

// TestRidgeMatchesSklearn checks coefficients and test predictions against
// scikit-learn's Ridge within ridgeTol and logs the differences.
func TestRidgeMatchesSklearn(t *testing.T) {
	ref := loadReference(t)
	train, test := referenceData(t, ref)
	recs := buildRecords(t, memory.NewGoAllocator(), train, 2500)
	testRecs := buildRecords(t, memory.NewGoAllocator(), test, len(test))
	m, rep, err := Train(context.Background(), Records(recs...), Config{
		Target:     Target{Task: Regression},
		Preprocess: PreprocessOptions{TopK: ref.Generator.TopK, MissingIndicators: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := append(append([]float64{}, m.Coef...), m.Intercept)
	want := append(append([]float64{}, ref.Ridge.Coef...), ref.Ridge.Intercept)
	for i := range got {
		if !closeTo(got[i], want[i], ridgeTol) {
			t.Errorf("coefficient %d (%s) = %.12g, sklearn %.12g", i, colName(m, i), got[i], want[i])
		}
	}
	t.Logf("report %+v; max |Δcoef| %.3g", rep, testcheck.MaxAbsDiff(got, want))
	p, err := m.Predict(testRecs[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("max |Δ test prediction| %.3g", testcheck.MaxAbsDiff(p, ref.Ridge.TestPred))
	for i := range p {
		if !closeTo(p[i], ref.Ridge.TestPred[i], ridgeTol) {
			t.Fatalf("test prediction %d = %.17g, sklearn %.17g (±%g)", i, p[i], ref.Ridge.TestPred[i], ridgeTol)
		}
	}
}

// TestMetricsMatchSklearn computes every metric on scikit-learn's own test
// predictions, so the results must agree to rounding: 1e-12 absolute
// (measured 1.1e-15).
func TestMetricsMatchSklearn(t *testing.T) {
	ref := loadReference(t)
	check := func(y, p []float64, want map[Metric]float64) {
		for m, w := range want {
			got, err := m.Compute(y, p)
			if err != nil {
				t.Errorf("%s: %v", m, err)
				continue
			}
			if !testcheck.Within(got, w, 1e-12) {
				t.Errorf("%s = %.17g, sklearn %.17g", m, got, w)
			}
		}
	}
	if len(ref.Logistic.TestMetrics) != 7 || len(ref.Ridge.TestMetrics) != 3 {
		t.Fatalf("reference metrics missing: %v %v", ref.Logistic.TestMetrics, ref.Ridge.TestMetrics)
	}
	check(ref.TestLabels, ref.Logistic.TestProba, ref.Logistic.TestMetrics)
	check(ref.TestValues, ref.Ridge.TestPred, ref.Ridge.TestMetrics)
}

func TestAUCTiesMatchSklearn(t *testing.T) {
	for _, c := range loadReference(t).AUCTies {
		t.Run(c.Name, func(t *testing.T) {
			got, err := AUC.Compute(c.Y, c.Score)
			if err != nil {
				t.Fatal(err)
			}
			if !testcheck.Within(got, c.AUC, 1e-12) {
				t.Errorf("AUC = %.15g, sklearn roc_auc_score %.15g", got, c.AUC)
			}
		})
	}
}

// TestResampleWeightsMatchNumpy evaluates the reference's explicit
// resamples as row counts, the way BootstrapDiff does, against the metric
// differences scikit-learn computed on the resampled vectors, to 1e-12
// (measured 2.1e-15).
func TestResampleWeightsMatchNumpy(t *testing.T) {
	ref := loadReference(t)
	for i, r := range ref.Resamples {
		counts := make([]float64, len(ref.TestLabels))
		for _, j := range r.Indices {
			counts[j]++
		}
		for m, want := range r.Diff {
			y, strong, weak := ref.TestLabels, ref.Logistic.TestProba, ref.Logistic.WeakTestProba
			if !m.Classification() {
				y, strong, weak = ref.TestValues, ref.Ridge.TestPred, ref.Ridge.WeakTestPred
			}
			a, err := prepare(m, y, strong)
			if err != nil {
				t.Fatal(err)
			}
			b, err := prepare(m, y, weak)
			if err != nil {
				t.Fatal(err)
			}
			va, _ := a.eval(counts)
			vb, _ := b.eval(counts)
			if !testcheck.Within(va-vb, want, 1e-12) {
				t.Errorf("resample %d %s: diff %.15g, numpy %.15g", i, m, va-vb, want)
			}
		}
	}
}

// TestBootstrapMatchesNumpy compares the interval with one numpy drew with
// its own generator: they agree up to Monte Carlo error, whose standard
// deviation for a 2.5% quantile of 2000 resamples is about 0.06 standard
// errors per estimate, so 0.5 standard errors is a > 5σ bound.
func TestBootstrapMatchesNumpy(t *testing.T) {
	ref := loadReference(t)
	b := ref.BootstrapAUC
	ci, err := BootstrapDiff(AUC, ref.TestLabels, ref.Logistic.WeakTestProba, ref.Logistic.TestProba,
		BootstrapOptions{Resamples: b.Resamples, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("go %+v; numpy lo %.6f hi %.6f se %.6f", ci, b.Lo, b.Hi, b.SE)
	if !testcheck.Within(ci.Lo, b.Lo, 0.5*b.SE) || !testcheck.Within(ci.Hi, b.Hi, 0.5*b.SE) {
		t.Errorf("interval [%.6f, %.6f], numpy [%.6f, %.6f] (se %.6f)", ci.Lo, ci.Hi, b.Lo, b.Hi, b.SE)
	}
	if !ci.ExcludesZero() || !ci.ChallengerBetter(0.001) {
		t.Errorf("the full model should beat the numeric-only one: %+v", ci)
	}
}

func TestPercentileMatchesNumpy(t *testing.T) {
	p := loadReference(t).Percentiles
	sorted := append([]float64{}, p.Values...)
	slices.Sort(sorted)
	for i, q := range p.Q {
		if got := Percentile(sorted, q); !testcheck.Within(got, p.Want[i], 1e-12) {
			t.Errorf("Percentile(%v) = %.15g, numpy %.15g", q, got, p.Want[i])
		}
	}
}
