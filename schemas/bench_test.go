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
	reused := func(d *Decoder) func() error {
		var ev Inference
		return func() error { _, err := d.DecodeInference(data, &ev); return err }
	}
	b.Run("scanner", func(b *testing.B) { benchDecode(b, data, reused) })
	b.Run("scanner_fresh", func(b *testing.B) {
		// A new Inference per event: what a caller that keeps events pays.
		benchDecode(b, data, func(d *Decoder) func() error {
			return func() error { var ev Inference; _, err := d.DecodeInference(data, &ev); return err }
		})
	})
	b.Run("encoding_json", func(b *testing.B) {
		benchDecode(b, data, func(d *Decoder) func() error {
			var ev Inference
			return func() error { return stdDecodeInference(d, data, &ev) }
		})
	})
}

// benchDecode measures decode, made once for a fresh decoder, over data,
// reporting bytes, allocations and events per second.
func benchDecode(b *testing.B, data []byte, decode func(*Decoder) func() error) {
	one := decode(benchDecoder(b))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := one(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
