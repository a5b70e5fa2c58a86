package model

import (
	"bytes"
	"context"
	"errors"
	"iter"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/driftwatch/driftwatch/internal/testcheck"
)

// TestPreprocessorRules checks the encoding rules on rows small enough to
// work out by hand: train x = 1, 3, (missing), 5 → mean 3, population std
// √(8/3); colour counts b:2, a:1, c:1 with TopK 2 → columns b, a (ties by
// name), other.
func TestPreprocessorRules(t *testing.T) {
	yes, no := ptr("yes"), ptr("no")
	train := []row{
		{num: map[string]float64{"x": 1}, cat: map[string]string{"colour": "b"}, label: yes},
		{num: map[string]float64{"x": 3}, cat: map[string]string{"colour": "a"}, label: no},
		{num: map[string]float64{}, cat: map[string]string{"colour": "b"}, label: yes},
		{num: map[string]float64{"x": 5, "const": 2}, cat: map[string]string{"colour": "c"}, label: no},
		{num: map[string]float64{"x": 1000}, cat: map[string]string{"colour": "zzz"}, label: nil}, // unlabelled: ignored
	}
	recs := buildRecords(t, memory.NewGoAllocator(), train, 2)
	pp, err := FitPreprocessor(context.Background(), Records(recs...), classTarget, PreprocessOptions{TopK: 2, MissingIndicators: true})
	if err != nil {
		t.Fatal(err)
	}
	wantCols := []string{"const", "x", "const:missing", "x:missing", "colour=b", "colour=a", "colour:other"}
	if got := pp.Columns(); !slices.Equal(got, wantCols) {
		t.Fatalf("columns %q, want %q", got, wantCols)
	}
	x := pp.Numeric[1]
	if x.Mean != 3 || !testcheck.Within(x.Std, math.Sqrt(8.0/3), 1e-15) || x.Missing != 0.25 || !x.Indicator {
		t.Errorf("x = %+v", x)
	}
	if c := pp.Numeric[0]; c.Mean != 2 || c.Std != 1 || c.Missing != 0.75 {
		t.Errorf("const = %+v (a zero std becomes 1)", c)
	}

	test := []row{
		{num: map[string]float64{"x": 3 + math.Sqrt(8.0/3)}, cat: map[string]string{"colour": "a"}},
		{num: map[string]float64{"x": math.NaN(), "new": 4}, cat: map[string]string{"colour": "unseen"}},
		{num: map[string]float64{"const": 7}, cat: map[string]string{}},
	}
	trec := buildRecords(t, memory.NewGoAllocator(), test, 10)[0]
	c, err := featureColumns(trec)
	if err != nil {
		t.Fatal(err)
	}
	enc := newEncoder(pp)
	got := make([]float64, 3*enc.ncols)
	enc.encode(c, 0, 3, got, enc.ncols)
	want := []float64{
		0, 1, 1, 0, 0, 1, 0, // const missing → 0 and indicator; x one std above
		0, 0, 1, 1, 0, 0, 1, // NaN counts as missing; unseen → other; new feature ignored
		5, 0, 0, 1, 0, 0, 0, // missing categorical sets nothing
	}
	for i := range want {
		if !testcheck.Within(got[i], want[i], 1e-12) {
			t.Fatalf("encoded\n%v\nwant\n%v", got, want)
		}
	}
}

func TestSaveLoadPredictsTheSame(t *testing.T) {
	ref := loadReference(t)
	train, test := referenceData(t, ref)
	recs := buildRecords(t, memory.NewGoAllocator(), train, 5000)
	trec := buildRecords(t, memory.NewGoAllocator(), test, len(test))[0]
	for _, target := range []Target{classTarget, {Task: Regression}} {
		t.Run(string(target.Task), func(t *testing.T) {
			m, rep, err := Train(context.Background(), Records(recs...), Config{Target: target})
			t.Logf("%+v", rep)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := m.Save(&buf); err != nil {
				t.Fatal(err)
			}
			loaded, err := Load(&buf)
			if err != nil {
				t.Fatal(err)
			}
			a, err := m.Predict(trec, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, err := loaded.Predict(trec, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range a {
				if a[i] != b[i] {
					t.Fatalf("row %d: %v before saving, %v after", i, a[i], b[i])
				}
			}
		})
	}
}

func TestLoadRejectsBadArtifacts(t *testing.T) {
	for name, doc := range map[string]string{
		"not json":       `{`,
		"unknown field":  `{"format":"driftwatch.linear-model.v1","surprise":1}`,
		"format":         `{"format":"v0","kind":"ridge_regression","target":{"task":"regression"}}`,
		"kind":           `{"format":"driftwatch.linear-model.v1","kind":"forest","target":{"task":"regression"}}`,
		"kind vs task":   `{"format":"driftwatch.linear-model.v1","kind":"ridge_regression","target":{"task":"binary_classification","positive_class":"y"}}`,
		"coef count":     `{"format":"driftwatch.linear-model.v1","kind":"ridge_regression","target":{"task":"regression"},"preprocessor":{"numeric":[{"name":"x","mean":0,"std":1}]},"coef":[]}`,
		"zero std":       `{"format":"driftwatch.linear-model.v1","kind":"ridge_regression","target":{"task":"regression"},"preprocessor":{"numeric":[{"name":"x","mean":0,"std":0}]},"coef":[1]}`,
		"no positive cl": `{"format":"driftwatch.linear-model.v1","kind":"logistic_regression_l2","target":{"task":"binary_classification"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Load(strings.NewReader(doc)); !errors.Is(err, ErrFormat) {
				t.Errorf("Load = %v, want ErrFormat", err)
			}
		})
	}
}

func TestTrainErrors(t *testing.T) {
	yes := ptr("yes")
	oneClass := buildRecords(t, memory.NewGoAllocator(), []row{
		{num: map[string]float64{"x": 1}, label: yes, value: ptr(1.0)},
		{num: map[string]float64{"x": 2}, label: yes, value: ptr(2.0)},
	}, 10)
	unlabelled := buildRecords(t, memory.NewGoAllocator(), []row{{num: map[string]float64{"x": 1}}}, 10)

	badSchema := arrow.NewSchema([]arrow.Field{{Name: ColumnNumeric, Type: arrow.BinaryTypes.String}, {Name: ColumnLabel, Type: arrow.BinaryTypes.String}}, nil)
	b := array.NewRecordBuilder(memory.NewGoAllocator(), badSchema)
	b.Field(0).(*array.StringBuilder).Append("x")
	b.Field(1).(*array.StringBuilder).Append("yes")
	bad := b.NewRecord()
	b.Release()
	defer bad.Release()

	boom := errors.New("boom")
	failing := Batches(func(context.Context) iter.Seq2[arrow.Record, error] {
		return func(yield func(arrow.Record, error) bool) {
			if yield(oneClass[0], nil) {
				yield(nil, boom)
			}
		}
	})
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	for _, tc := range []struct {
		name string
		ctx  context.Context
		data Batches
		cfg  Config
		want error
	}{
		{"single class", context.Background(), Records(oneClass...), Config{Target: classTarget}, ErrSingleClass},
		{"no labels", context.Background(), Records(unlabelled...), Config{Target: classTarget}, ErrNoRows},
		{"no rows", context.Background(), Records(), Config{Target: Target{Task: Regression}}, ErrNoRows},
		{"schema", context.Background(), Records(bad), Config{Target: classTarget}, ErrSchema},
		{"reader error", context.Background(), failing, Config{Target: classTarget}, boom},
		{"reader error, 2 workers", context.Background(), failing, Config{Target: Target{Task: Regression}, Workers: 2}, boom},
		{"canceled", canceled, Records(oneClass...), Config{Target: classTarget}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := Train(tc.ctx, tc.data, tc.cfg); !errors.Is(err, tc.want) {
				t.Errorf("Train = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestConfigValidateReportsEveryField(t *testing.T) {
	err := Config{Target: Target{Task: "ranking"}, C: -1, Alpha: math.NaN(), MaxIter: -1, Workers: -2,
		Preprocess: PreprocessOptions{TopK: -1}}.Validate()
	for _, field := range []string{"target.task", "c:", "alpha:", "max_iter:", "workers:", "preprocess.top_k:"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("Validate() = %v, want it to name %s", err, field)
		}
	}
	if err := (Config{Target: Target{Task: Classification}}).Validate(); err == nil {
		t.Error("classification without a positive class validated")
	}
}

// TestLogisticSkipsUnlabelledRows: rows without a label neither count nor
// move the coefficients.
func TestLogisticSkipsUnlabelledRows(t *testing.T) {
	ref := loadReference(t)
	train, _ := referenceData(t, ref)
	train = train[:2000]
	with := append([]row{}, train...)
	for i := range 300 {
		with = append(with, row{num: map[string]float64{"x0": float64(i)}, cat: map[string]string{"color": "pink"}})
	}
	m1, _, err := Train(context.Background(), Records(buildRecords(t, memory.NewGoAllocator(), train, 700)...), Config{Target: classTarget})
	if err != nil {
		t.Fatal(err)
	}
	m2, rep, err := Train(context.Background(), Records(buildRecords(t, memory.NewGoAllocator(), with, 700)...), Config{Target: classTarget})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows != 2000 || rep.SkippedRows != 300 {
		t.Errorf("rows %d skipped %d, want 2000 and 300", rep.Rows, rep.SkippedRows)
	}
	if d := testcheck.MaxAbsDiff(m1.Coef, m2.Coef); !testcheck.AtMost(d, 1e-12) || m1.Intercept != m2.Intercept {
		t.Errorf("unlabelled rows moved the coefficients by %g", d)
	}
}
