// Package svgchart draws the console's charts as inline SVG, server side,
// so that the pages and the shareable report need no JavaScript, no
// charting library and no request beyond the page itself.
//
// Every chart is a self-contained <svg> element returned as template.HTML.
// Its marks carry classes a stylesheet colours and a browser test counts:
// heatmap cells are rect.cell (plus .drifted, .sustained, .missing), bars
// are rect.bar with the series' class (and .new for a category the
// reference never saw), lines are polyline.series, a threshold is
// line.threshold and a band rect.band. Every mark has a <title> with its
// numbers, which a browser shows on hover.
package svgchart

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
	"time"
)

// Cell is one heatmap cell: a feature's score in one window.
type Cell struct {
	Value     float64
	Threshold float64
	Drifted   bool
	Sustained bool
	// Missing marks a window without a result for the row (drawn grey).
	Missing bool
	// Href, when set, makes the cell a link.
	Href  string
	Title string
}

// Heatmap draws rows × columns of cells coloured by value against the
// threshold (value/threshold from 0 to 2 runs from pale to deep red, at 1
// the cell turns drifted), sustained cells outlined. Rows and columns
// label the axes; cells[r][c] is row r, column c.
func Heatmap(rows, cols []string, cells [][]Cell) template.HTML {
	const cw, ch, left, top = 22, 18, 110, 8
	w := left + cw*len(cols) + 10
	h := top + ch*len(rows) + 60
	var b strings.Builder
	open(&b, w, h, "heatmap")
	for r, name := range rows {
		y := top + r*ch
		fmt.Fprintf(&b, `<text class="label" x="%d" y="%d" text-anchor="end">%s</text>`, left-4, y+ch-5, esc(name))
		for c := range cols {
			cell := Cell{Missing: true}
			if r < len(cells) && c < len(cells[r]) {
				cell = cells[r][c]
			}
			class, fill := "cell", "#e5e7eb"
			switch {
			case cell.Missing:
				class += " missing"
			default:
				ratio := 0.0
				if cell.Threshold > 0 && !math.IsNaN(cell.Value) {
					ratio = math.Min(cell.Value/cell.Threshold, 2)
				}
				fill = heat(ratio, cell.Drifted)
				if cell.Drifted {
					class += " drifted"
				}
				if cell.Sustained {
					class += " sustained"
				}
			}
			stroke := ""
			if cell.Sustained {
				stroke = ` stroke="#111827" stroke-width="2"`
			}
			rect := fmt.Sprintf(`<rect class="%s" x="%d" y="%d" width="%d" height="%d" fill="%s"%s data-row="%s" data-col="%s"><title>%s</title></rect>`,
				class, left+c*cw+1, y+1, cw-2, ch-2, fill, stroke, esc(name), esc(cols[c]), esc(cell.Title))
			if cell.Href != "" && !cell.Missing {
				fmt.Fprintf(&b, `<a href="%s">%s</a>`, esc(cell.Href), rect)
			} else {
				b.WriteString(rect)
			}
		}
	}
	// Column labels: every few so that they do not overlap.
	every := max(1, len(cols)/8)
	for c, name := range cols {
		if c%every != 0 && c != len(cols)-1 {
			continue
		}
		x, y := left+c*cw+cw/2, top+ch*len(rows)+12
		fmt.Fprintf(&b, `<text class="label" x="%d" y="%d" transform="rotate(30 %d %d)">%s</text>`, x, y, x, y, esc(name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// heat is the fill of a cell whose value is ratio × its threshold.
func heat(ratio float64, drifted bool) string {
	if drifted {
		// 1..2 → orange-red to deep red.
		t := math.Max(0, math.Min(ratio-1, 1))
		return rgb(239-t*112, 68-t*39, 68-t*39)
	}
	// 0..1 → pale green to amber.
	t := math.Max(0, math.Min(ratio, 1))
	return rgb(220+t*32, 252-t*41, 231-t*170)
}

func rgb(r, g, b float64) string {
	return fmt.Sprintf("#%02x%02x%02x", int(r), int(g), int(b))
}

// Series is one named set of values for Bars or Line.
type Series struct {
	Name string
	// Class is the CSS class of its marks (for example "reference",
	// "current").
	Class  string
	Values []float64
}

// Bars draws series side by side over shared labels (a histogram's bins or
// a categorical feature's categories), each bar's height its value (the
// caller passes shares so that two distributions of different sizes
// compare). marked[i] flags label i (a category the reference never saw):
// its label is drawn bold and its bars get the class "new".
func Bars(labels []string, series []Series, marked []bool, unit string) template.HTML {
	const h, left, top = 200, 46, 10
	// The legend stacks a line per series under the labels.
	bottom := 60 + 14*len(series)
	n := max(1, len(labels))
	slot := math.Max(8, math.Min(40, 560/float64(n)))
	w := max(left+int(slot*float64(n))+10, 320)
	// The value axis spans zero and every value, so that negative values
	// (a correlation) hang below the zero line.
	lo, hi := 0.0, 0.0
	for _, s := range series {
		for _, v := range s.Values {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if hi == lo {
		hi = lo + 1
	}
	py := func(v float64) float64 { return float64(top) + (hi-v)/(hi-lo)*h }
	var b strings.Builder
	open(&b, w, h+top+bottom, "bars")
	axisY(&b, left, top, h, lo, hi, unit)
	if lo < 0 {
		fmt.Fprintf(&b, `<line class="axis zero" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, left, w-10, py(0), py(0))
	}
	bw := (slot - 2) / float64(max(1, len(series)))
	for i, label := range labels {
		x0 := float64(left) + float64(i)*slot + 1
		isNew := i < len(marked) && marked[i]
		for k, s := range series {
			if i >= len(s.Values) || math.IsNaN(s.Values[i]) {
				continue
			}
			v := s.Values[i]
			if math.IsInf(v, 0) {
				continue
			}
			y0, y1 := py(math.Max(v, 0)), py(math.Min(v, 0))
			class := "bar " + s.Class
			if isNew {
				class += " new"
			}
			fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" data-label="%s"><title>%s %s: %s</title></rect>`,
				class, x0+float64(k)*bw, y0, math.Max(bw-0.5, 0.5), math.Max(y1-y0, 0), esc(label), esc(s.Name), esc(label), num(v, unit))
		}
		if len(labels) <= 30 || i%max(1, len(labels)/15) == 0 {
			x, y := x0+slot/2, float64(top+h+12)
			weight := ""
			if isNew {
				weight = ` font-weight="bold"`
				label += " (new)"
			}
			fmt.Fprintf(&b, `<text class="label" x="%.1f" y="%.1f"%s transform="rotate(35 %.1f %.1f)">%s</text>`, x, y, weight, x, y, esc(label))
		}
	}
	for k, s := range series {
		y := top + h + 64 + 14*k
		fmt.Fprintf(&b, `<rect class="key %s" x="%d" y="%d" width="10" height="10"/><text class="label" x="%d" y="%d">%s</text>`, s.Class, left, y-9, left+14, y, esc(s.Name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// Point is one value at a time.
type Point struct {
	T time.Time
	Y float64
}

// LineSeries is one line.
type LineSeries struct {
	Name   string
	Class  string
	Points []Point
}

// Guide is a horizontal threshold or reference level (drawn dashed), or a
// band between Lo and Hi (an interval) when Band is set.
type Guide struct {
	Name   string
	Class  string
	Y      float64
	Band   bool
	Lo, Hi float64
}

// Line draws series over time with guides.
func Line(series []LineSeries, guides []Guide, unit string) template.HTML {
	const w, h, left, top, bottom = 620, 180, 52, 10, 44
	var t0, t1 time.Time
	lo, hi := math.Inf(1), math.Inf(-1)
	see := func(y float64) {
		if !math.IsNaN(y) && !math.IsInf(y, 0) {
			lo, hi = math.Min(lo, y), math.Max(hi, y)
		}
	}
	for _, s := range series {
		for _, p := range s.Points {
			if t0.IsZero() || p.T.Before(t0) {
				t0 = p.T
			}
			if p.T.After(t1) {
				t1 = p.T
			}
			see(p.Y)
		}
	}
	for _, g := range guides {
		if g.Band {
			see(g.Lo)
			see(g.Hi)
		} else {
			see(g.Y)
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 0, 1
	}
	if lo > 0 && lo < hi/2 {
		lo = 0
	}
	if hi == lo {
		hi = lo + 1
	}
	pad := (hi - lo) * 0.05
	lo, hi = lo-pad, hi+pad
	span := t1.Sub(t0).Seconds()
	if span <= 0 {
		span = 1
	}
	px := func(t time.Time) float64 { return left + t.Sub(t0).Seconds()/span*float64(w-left-10) }
	py := func(y float64) float64 { return top + (hi-y)/(hi-lo)*h }
	var b strings.Builder
	open(&b, w, h+top+bottom, "line")
	axisY(&b, left, top, h, lo, hi, unit)
	for _, g := range guides {
		if g.Band {
			fmt.Fprintf(&b, `<rect class="band %s" x="%d" y="%.1f" width="%d" height="%.1f"><title>%s: %s to %s</title></rect>`,
				g.Class, left, py(g.Hi), w-left-10, math.Max(py(g.Lo)-py(g.Hi), 1), esc(g.Name), num(g.Lo, unit), num(g.Hi, unit))
			continue
		}
		fmt.Fprintf(&b, `<line class="threshold %s" x1="%d" x2="%d" y1="%.1f" y2="%.1f"><title>%s: %s</title></line>`,
			g.Class, left, w-10, py(g.Y), py(g.Y), esc(g.Name), num(g.Y, unit))
	}
	for _, s := range series {
		var pts []string
		for _, p := range s.Points {
			if math.IsNaN(p.Y) || math.IsInf(p.Y, 0) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p.T), py(p.Y)))
		}
		fmt.Fprintf(&b, `<polyline class="series %s" fill="none" points="%s"><title>%s</title></polyline>`, s.Class, strings.Join(pts, " "), esc(s.Name))
		for _, p := range s.Points {
			if math.IsNaN(p.Y) || math.IsInf(p.Y, 0) {
				continue
			}
			fmt.Fprintf(&b, `<circle class="point %s" cx="%.1f" cy="%.1f" r="2.5"><title>%s %s: %s</title></circle>`,
				s.Class, px(p.T), py(p.Y), esc(s.Name), p.T.UTC().Format("01-02 15:04"), num(p.Y, unit))
		}
	}
	if !t0.IsZero() {
		fmt.Fprintf(&b, `<text class="label" x="%d" y="%d">%s</text>`, left, top+h+14, t0.UTC().Format("2006-01-02 15:04"))
		fmt.Fprintf(&b, `<text class="label" x="%d" y="%d" text-anchor="end">%s UTC</text>`, w-10, top+h+14, t1.UTC().Format("2006-01-02 15:04"))
	}
	ls := make([]Series, 0, len(series)+len(guides))
	for _, s := range series {
		ls = append(ls, Series{Name: s.Name, Class: s.Class})
	}
	for _, g := range guides {
		ls = append(ls, Series{Name: g.Name, Class: g.Class})
	}
	legend(&b, ls, left, top+h+bottom-8)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func open(b *strings.Builder, w, h int, class string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart %s" width="%d" height="%d" viewBox="0 0 %d %d" role="img">`, class, w, h, w, h)
}

func axisY(b *strings.Builder, left, top, h int, lo, hi float64, unit string) {
	fmt.Fprintf(b, `<line class="axis" x1="%d" x2="%d" y1="%d" y2="%d"/>`, left, left, top, top+h)
	for i := 0; i <= 4; i++ {
		v := lo + (hi-lo)*float64(i)/4
		y := float64(top+h) - float64(h)*float64(i)/4
		fmt.Fprintf(b, `<text class="label" x="%d" y="%.1f" text-anchor="end">%s</text>`, left-4, y+4, num(v, unit))
	}
}

func legend(b *strings.Builder, series []Series, x, y int) {
	for _, s := range series {
		fmt.Fprintf(b, `<rect class="key %s" x="%d" y="%d" width="10" height="10"/><text class="label" x="%d" y="%d">%s</text>`, s.Class, x, y-9, x+14, y, esc(s.Name))
		x += 24 + 7*len(s.Name)
	}
}

func num(v float64, unit string) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case unit == "%":
		return fmt.Sprintf("%.1f%%", v*100)
	case v != 0 && (math.Abs(v) < 0.01 || math.Abs(v) >= 10000):
		return fmt.Sprintf("%.3g", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func esc(s string) string { return html.EscapeString(s) }
