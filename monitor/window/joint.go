package window

import (
	"fmt"
	"math"
	"slices"
)

// Joint is a row-aligned sample of one window's numeric features (the
// prediction score left out), for the multivariate drift methods, which
// need the features of one event together: the per-feature samples are
// sorted value→count lists and have lost which values came from one row.
//
// It rides in the bin query (no read of its own): beside each feature's
// sample, ClickHouse hands over the hashes h and values v of the rows whose event
// hash h is below JointRows / rows of the window — the same hash key as
// the samples, one rate for every feature of the window, so a row kept
// for one feature is kept for all it carries. Go joins the pairs on h.
type Joint struct {
	// Features names the columns; Rows holds one row per event, in hash
	// order (random with respect to time), NaN where the event does not
	// carry the feature.
	Features []string
	Rows     [][]float64
}

// jointRate is the share of a window's rows the joint sample keeps.
func jointRate(limit int, rows int64) float64 { return sampleRate(limit, rows) }

// jointCollector gathers the (h, v) pairs of the bin queries per window
// (0 reference, 1 current) and feature column.
type jointCollector struct {
	cols  map[string]int
	names []string
	pairs [2]map[float64][]float64
}

// newJointCollector collects the joint sample of features num (the score
// left out).
func newJointCollector(num []Numeric) *jointCollector {
	c := &jointCollector{cols: map[string]int{}}
	for _, n := range num {
		if n.Feature == ScoreFeature {
			continue
		}
		c.cols[n.Feature] = len(c.names)
		c.names = append(c.names, n.Feature)
	}
	c.pairs = [2]map[float64][]float64{{}, {}}
	return c
}

// add records the values vs of feature f in window w, of the events of
// hashes hs.
func (c *jointCollector) add(w int, f string, hs, vs []float64) error {
	col, ok := c.cols[f]
	if !ok {
		return nil // the score
	}
	if len(hs) != len(vs) {
		return fmt.Errorf("joint sample of %s: %d hashes for %d values", f, len(hs), len(vs))
	}
	m := c.pairs[w]
	for i, h := range hs {
		row, ok := m[h]
		if !ok {
			row = make([]float64, len(c.names))
			for j := range row {
				row[j] = math.NaN()
			}
			m[h] = row
		}
		row[col] = vs[i]
	}
	return nil
}

// joint returns window w's sample, rows in hash order.
func (c *jointCollector) joint(w int) *Joint {
	hs := make([]float64, 0, len(c.pairs[w]))
	for h := range c.pairs[w] {
		hs = append(hs, h)
	}
	slices.Sort(hs)
	j := &Joint{Features: c.names, Rows: make([][]float64, len(hs))}
	for i, h := range hs {
		j.Rows[i] = c.pairs[w][h]
	}
	return j
}

// bytes estimates the memory j holds.
func (j *Joint) bytes() int64 {
	if j == nil {
		return 0
	}
	return int64(8*len(j.Features)*len(j.Rows)) + int64(24*len(j.Rows))
}

// jointJSON is a Joint in a persisted profile: JSON has no NaN, so a
// missing value is null.
type jointJSON struct {
	Features []string     `json:"features"`
	Rows     [][]*float64 `json:"rows"`
}

func (j *Joint) toJSON() *jointJSON {
	if j == nil {
		return nil
	}
	out := &jointJSON{Features: j.Features, Rows: make([][]*float64, len(j.Rows))}
	for i, r := range j.Rows {
		out.Rows[i] = make([]*float64, len(r))
		for k, v := range r {
			if finite(v) { // an infinity is no value JSON can hold either
				out.Rows[i][k] = &r[k]
			}
		}
	}
	return out
}

func (p *jointJSON) joint() (*Joint, error) {
	if p == nil {
		return nil, nil
	}
	j := &Joint{Features: p.Features, Rows: make([][]float64, len(p.Rows))}
	for i, r := range p.Rows {
		if len(r) != len(p.Features) {
			return nil, fmt.Errorf("joint sample row %d has %d values for %d features", i, len(r), len(p.Features))
		}
		j.Rows[i] = make([]float64, len(r))
		for k, v := range r {
			j.Rows[i][k] = math.NaN()
			if v != nil {
				j.Rows[i][k] = *v
			}
		}
	}
	return j, nil
}
