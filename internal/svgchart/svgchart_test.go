package svgchart

import (
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

// marks counts the elements of an SVG by "tag.class" for each class they
// carry, after checking that the SVG is well-formed XML.
func marks(t *testing.T, svg string) map[string]int {
	t.Helper()
	n := map[string]int{}
	dec := xml.NewDecoder(strings.NewReader(svg))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatalf("not well-formed SVG: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok {
			n[se.Name.Local]++
			for _, a := range se.Attr {
				if a.Name.Local == "class" {
					for _, c := range strings.Fields(a.Value) {
						n[se.Name.Local+"."+c]++
					}
				}
			}
		}
	}
}

func TestHeatmap(t *testing.T) {
	// Two features × three windows: f1 drifts in the last two windows and
	// the last is sustained; f0 has no result in the first window.
	cells := [][]Cell{
		{{Missing: true}, {Value: 0.01, Threshold: 0.2}, {Value: math.NaN(), Threshold: 0.2}},
		{{Value: 0.1, Threshold: 0.2}, {Value: 0.3, Threshold: 0.2, Drifted: true, Href: "/x?a=1&b=<2>"}, {Value: 0.5, Threshold: 0.2, Drifted: true, Sustained: true, Title: "f1 <sustained>"}},
	}
	got := marks(t, string(Heatmap([]string{"f0", "f1"}, []string{"w1", "w2", "w3"}, cells)))
	for k, want := range map[string]int{"rect.cell": 6, "rect.drifted": 2, "rect.sustained": 1, "rect.missing": 1, "a": 1} {
		if got[k] != want {
			t.Errorf("%s: %d, want %d", k, got[k], want)
		}
	}
}

func TestBars(t *testing.T) {
	// A histogram of four bins from two series, and categories with one new.
	got := marks(t, string(Bars([]string{"0", "1", "2", "3"}, []Series{
		{Name: "reference", Class: "reference", Values: []float64{0.25, 0.25, 0.25, 0.25}},
		{Name: "current", Class: "current", Values: []float64{0, 0.1, 0.4, math.NaN()}},
	}, []bool{false, false, false, true}, "%")))
	for k, want := range map[string]int{"rect.bar": 7, "rect.reference": 5, "rect.current": 4, "rect.new": 1} {
		// rect.reference/current also count the legend keys (one each).
		if got[k] != want {
			t.Errorf("%s: %d, want %d", k, got[k], want)
		}
	}
}

// TestBarsNegative: a negative value hangs below the zero line, and no
// bar has a negative height (which browsers reject).
func TestBarsNegative(t *testing.T) {
	svg := string(Bars([]string{"lag 0", "lag 1"}, []Series{{Name: "r", Class: "s0", Values: []float64{-0.8, 0.4}}}, nil, ""))
	if strings.Contains(svg, `height="-`) {
		t.Errorf("a negative height:\n%s", svg)
	}
	if got := marks(t, svg); got["line.zero"] != 1 || got["rect.bar"] != 2 {
		t.Errorf("marks %v, want a zero line and two bars", got)
	}
}

func TestLine(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	pts := []Point{{t0, 0.1}, {t0.Add(time.Minute), math.NaN()}, {t0.Add(2 * time.Minute), 0.4}}
	svg := string(Line([]LineSeries{{Name: "psi", Class: "current", Points: pts}},
		[]Guide{{Name: "threshold", Class: "limit", Y: 0.2}, {Name: "interval", Class: "ci", Band: true, Lo: 0.15, Hi: 0.3}}, ""))
	got := marks(t, svg)
	for k, want := range map[string]int{"polyline.series": 1, "circle.point": 2, "line.threshold": 1, "rect.band": 1} {
		if got[k] != want {
			t.Errorf("%s: %d, want %d", k, got[k], want)
		}
	}
	if strings.Contains(svg, "NaN,") {
		t.Errorf("a NaN point was drawn:\n%s", svg)
	}
	// An empty chart still draws (axes only).
	marks(t, string(Line(nil, nil, "")))
}
