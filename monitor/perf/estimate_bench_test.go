package perf

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/monitor/cbpe"
)

// BenchmarkEstimate sets the cost of CBPE against the realized metrics it
// sits next to, on a reference and a window of benchRows score-only
// inferences each (distinct scores, the worst case for the per-score
// calibration): Compute (realized, labelled reference), ReferenceRows +
// cbpe.Fit (once per reference, cached by the monitor), Estimate (every
// window, every round).
//
//	go test ./monitor/perf/ -run '^$' -bench BenchmarkEstimate -benchtime 5x
func BenchmarkEstimate(b *testing.B) {
	const benchRows = 100_000
	conn := openDB(b)
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-48 * time.Hour)
	refSpan, cur := Span{Start: t0, End: t0.Add(time.Hour)}, Span{Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)}
	rng := rand.New(rand.NewPCG(18, 1))
	scores, labels := make([]float64, benchRows), make([]int, benchRows)
	for i := range scores {
		z := rng.NormFloat64() * 1.5
		p := 1 / (1 + math.Exp(-z))
		scores[i] = 1 / (1 + math.Exp(-(z*0.6 + 0.1*rng.NormFloat64()))) // miscalibrated
		if rng.Float64() < p {
			labels[i] = 1
		}
	}
	insertScored(b, conn, "bench", refSpan.Start, scores, labels)
	for i := range scores {
		scores[i] = 1 / (1 + math.Exp(-(rng.NormFloat64()*1.2*0.6 + 0.1*rng.NormFloat64())))
	}
	insertScored(b, conn, "bench", cur.Start, scores, nil)
	opts := Options{Task: Classification, PositiveLabel: "1"}
	var ref cbpe.Reference
	b.Run("compute_realized_reference", func(b *testing.B) {
		for b.Loop() {
			if _, err := Compute(ctx, conn, "bench", refSpan, opts); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reference_rows_and_fit", func(b *testing.B) {
		for b.Loop() {
			rows, err := ReferenceRows(ctx, conn, "bench", refSpan, opts, 200_000)
			if err != nil {
				b.Fatal(err)
			}
			if ref, err = cbpe.Fit(rows); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(ref.Calibrator.X)), "knots")
	})
	b.Run("estimate_window", func(b *testing.B) {
		for b.Loop() {
			if _, err := Estimate(ctx, conn, "bench", cur, opts, ref); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("compute_window", func(b *testing.B) {
		for b.Loop() {
			if _, err := Compute(ctx, conn, "bench", cur, opts); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkComputeSlices sets the cost of performance per slice against
// the population's alone, on a window of benchRows labelled binary
// inferences: Compute (the population) and ComputeSlices with 10 slices
// (each row in one, by its event hash, as one segment key with 10 values
// makes it), the rows expanded by ARRAY JOIN in the same queries.
//
//	go test ./monitor/perf/ -run '^$' -bench BenchmarkComputeSlices -benchtime 5x
func BenchmarkComputeSlices(b *testing.B) {
	const benchRows = 100_000
	conn := openDB(b)
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-48 * time.Hour)
	w := Span{Start: t0, End: t0.Add(time.Hour)}
	rng := rand.New(rand.NewPCG(19, 1))
	scores, labels := make([]float64, benchRows), make([]int, benchRows)
	for i := range scores {
		z := rng.NormFloat64() * 1.5
		scores[i] = 1 / (1 + math.Exp(-z))
		if rng.Float64() < scores[i] {
			labels[i] = 1
		}
	}
	insertScored(b, conn, "bench", w.Start, scores, labels)
	opts := Options{Task: Classification, PositiveLabel: "1"}
	sl := Slices{Expr: "[toUInt32(1 + cityHash64(event_id) % 10)]"}
	for i := range 10 {
		sl.Names = append(sl.Names, fmt.Sprintf("k=%d", i))
	}
	b.Run("population", func(b *testing.B) {
		for b.Loop() {
			if _, err := Compute(ctx, conn, "bench", w, opts); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("population_and_10_slices", func(b *testing.B) {
		for b.Loop() {
			if _, s, err := ComputeSlices(ctx, conn, "bench", w, opts, sl); err != nil || len(s) != 10 {
				b.Fatal(err, len(s))
			}
		}
	})
}
