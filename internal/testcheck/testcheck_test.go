package testcheck

import (
	"math"
	"testing"
)

func TestComparisonsRejectNaN(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name string
		ok   bool
		want bool
	}{
		{"within", Within(1.05, 1, 0.1), true},
		{"not within", Within(1.2, 1, 0.1), false},
		{"within, NaN got", Within(nan, 1, 0.1), false},
		{"within, NaN want", Within(1, nan, 0.1), false},
		{"within, infinite tolerance, NaN got", Within(nan, 1, math.Inf(1)), false},
		{"rel: 1% of 100 plus 0", WithinRel(100.9, 100, 0.01, 0), true},
		{"rel: beyond", WithinRel(101.1, 100, 0.01, 0), false},
		{"rel: NaN", WithinRel(nan, 100, 0.01, 1e-12), false},
		{"scaled: absolute below 1", WithinScaled(0.5+9e-5, 0.5, 1e-4), true},
		{"scaled: relative above 1", WithinScaled(1000.09, 1000, 1e-4), true},
		{"scaled: beyond", WithinScaled(1000.2, 1000, 1e-4), false},
		{"scaled: NaN", WithinScaled(nan, 1000, 1e-4), false},
	} {
		if tc.ok != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.ok, tc.want)
		}
	}
}
