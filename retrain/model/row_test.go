package model

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/memory"
)

// PredictRow gives what Predict gives for the same rows, missing values
// and unseen categories included (the reference is Predict, whose numbers
// are checked against scikit-learn in reference_test.go).
func TestPredictRowMatchesPredict(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	str := func(s string) *string { return &s }
	var rows []row
	for i := range 400 {
		r := row{num: map[string]float64{"a": rng.NormFloat64(), "b": 3 + rng.NormFloat64()}, cat: map[string]string{"c": []string{"x", "y", "z"}[i%3]}}
		if i%7 == 0 {
			delete(r.num, "b")
		}
		r.label = str("0")
		if r.num["a"]+0.3*rng.NormFloat64() > 0 {
			r.label = str("1")
		}
		rows = append(rows, r)
	}
	recs := buildRecords(t, memory.NewGoAllocator(), rows, 100)
	m, _, err := Train(context.Background(), Records(recs...), Config{Target: Target{Task: Classification, PositiveClass: "1"},
		Preprocess: PreprocessOptions{MissingIndicators: true}})
	if err != nil {
		t.Fatal(err)
	}
	test := []row{
		{num: map[string]float64{"a": 0.5, "b": 2}, cat: map[string]string{"c": "y"}},
		{num: map[string]float64{"a": -1}, cat: map[string]string{"c": "unseen"}},
		{num: map[string]float64{"a": 0.1, "b": 4, "extra": 9}, cat: map[string]string{}},
		{num: map[string]float64{"a": math.NaN(), "b": 3}, cat: map[string]string{"c": "x"}},
	}
	want, err := m.Predict(buildRecords(t, memory.NewGoAllocator(), test, 10)[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range test {
		if got := m.PredictRow(r.num, r.cat); !(math.Abs(got-want[i]) <= 1e-15) {
			t.Errorf("row %d: PredictRow = %v, Predict = %v", i, got, want[i])
		}
	}
}
