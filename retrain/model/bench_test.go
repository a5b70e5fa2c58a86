package model

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// benchRecords builds n rows with p numeric features (keys sorted, as the
// ingest builders write them) and a label from a known logistic model, in
// record batches of batch rows.
func benchRecords(tb testing.TB, n, p, batch int) []arrow.Record {
	tb.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([]string, p)
	beta := make([]float64, p)
	for j := range keys {
		keys[j] = fmt.Sprintf("f%02d", j)
		beta[j] = rng.NormFloat64() / math.Sqrt(float64(p))
	}
	mem := memory.NewGoAllocator()
	var recs []arrow.Record
	x := make([]float64, p)
	for lo := 0; lo < n; lo += batch {
		b := array.NewRecordBuilder(mem, testSchema)
		nm := b.Field(0).(*array.MapBuilder)
		kb := nm.KeyBuilder().(*array.StringBuilder)
		vb := nm.ItemBuilder().(*array.Float64Builder)
		cm := b.Field(1).(*array.MapBuilder)
		lb := b.Field(2).(*array.StringBuilder)
		fb := b.Field(3).(*array.Float64Builder)
		for range min(batch, n-lo) {
			nm.Append(true)
			z := 0.2
			for j := range x {
				x[j] = rng.NormFloat64()*float64(j+1) + float64(j)
				z += beta[j] * (x[j] - float64(j)) / float64(j+1)
				kb.Append(keys[j])
				vb.Append(x[j])
			}
			cm.Append(true)
			if rng.Float64() < 1/(1+math.Exp(-z)) {
				lb.Append("yes")
			} else {
				lb.Append("no")
			}
			fb.Append(z)
		}
		recs = append(recs, b.NewRecord())
		b.Release()
	}
	tb.Cleanup(func() {
		for _, r := range recs {
			r.Release()
		}
	})
	return recs
}

// BenchmarkTrainLogistic1M trains logistic regression on 1,000,000 rows ×
// 20 numeric features in batches of 16384 rows (the records are built once,
// outside the timing).
func BenchmarkTrainLogistic1M(b *testing.B) {
	recs := benchRecords(b, 1_000_000, 20, 16384)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_, rep, err := Train(context.Background(), Records(recs...), Config{Target: classTarget})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(rep.Passes), "passes")
	}
}

// BenchmarkTrainRidge1M is the same data with ridge regression (two
// passes).
func BenchmarkTrainRidge1M(b *testing.B) {
	recs := benchRecords(b, 1_000_000, 20, 16384)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := Train(context.Background(), Records(recs...), Config{Target: Target{Task: Regression}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBootstrapAUC100k is the paired bootstrap of ROC AUC with the
// default 1000 resamples on 100,000 rows.
func BenchmarkBootstrapAUC100k(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	n := 100_000
	y, pa, pb := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range y {
		if rng.Float64() < 0.3 {
			y[i] = 1
		}
		pa[i] = sigmoid(y[i] + rng.NormFloat64())
		pb[i] = sigmoid(1.1*y[i] + rng.NormFloat64())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := BootstrapDiff(AUC, y, pa, pb, BootstrapOptions{Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
}
