package schemas

import (
	"os"
	"testing"
	"time"
)

func benchDecoder(b *testing.B) *Decoder {
	d, err := NewDecoder(Options{Now: func() time.Time { return time.Date(2025, 11, 20, 15, 0, 0, 0, time.UTC) }})
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkDecodeInference measures the ingest shape: one ~850-byte event
// with 20 numeric and 5 categorical features.
func BenchmarkDecodeInference(b *testing.B) {
	data, err := os.ReadFile("testdata/valid/inference-bench.json")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("scanner", func(b *testing.B) {
		d := benchDecoder(b)
		var ev Inference
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := d.DecodeInference(data, &ev); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("scanner_fresh", func(b *testing.B) {
		// A new Inference per event: what a caller that keeps events pays.
		d := benchDecoder(b)
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			var ev Inference
			if _, err := d.DecodeInference(data, &ev); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("encoding_json", func(b *testing.B) {
		d := benchDecoder(b)
		var ev Inference
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if err := stdDecodeInference(d, data, &ev); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
