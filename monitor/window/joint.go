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
	// Categorical names the categorical features (the prediction label
	// left out) and Categories holds, aligned with Rows, each row's
	// category of each ("" where the event does not carry the feature).
	// They come from a narrow read of their own (jointCategorySQL) of the
	// rows below the same hash rate, joined on h into the same rows; a row
	// with categories but no numeric value has NaN in every numeric column.
	Categorical []string
	Categories  [][]string
}

// jointRate is the share of a window's rows the joint sample keeps.
func jointRate(limit int, rows int64) float64 { return sampleRate(limit, rows) }

// jointCollector gathers the (h, v) pairs of the bin queries per window
// (0 reference, 1 current) and feature column.
type jointCollector struct {
	cols  map[string]int
	names []string
	pairs [2]map[float64][]float64
	// cats[w][h] are the categories of event h, columns catNames; filled
	// by the category goroutine (setCategories), merged in joint.
	catNames []string
	cats     [2]map[float64][]string
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
	for h := range c.cats[w] {
		if _, ok := c.pairs[w][h]; !ok {
			hs = append(hs, h)
		}
	}
	slices.Sort(hs)
	j := &Joint{Features: c.names, Rows: make([][]float64, len(hs))}
	if c.catNames != nil {
		j.Categorical, j.Categories = c.catNames, make([][]string, len(hs))
	}
	for i, h := range hs {
		row, ok := c.pairs[w][h]
		if !ok {
			row = make([]float64, len(c.names))
			for k := range row {
				row[k] = math.NaN()
			}
		}
		j.Rows[i] = row
		if c.catNames != nil {
			cs, ok := c.cats[w][h]
			if !ok {
				cs = make([]string, len(c.catNames))
			}
			j.Categories[i] = cs
		}
	}
	return j
}

// catPair is one (window, event hash, feature, category) of
// jointCategorySQL.
type catPair struct {
	w       int
	h       float64
	feature string
	value   string
}

// categoryCollection groups pairs into rows per window and hash, columns
// names (pairs of other features are dropped).
func categoryCollection(names []string, pairs []catPair) [2]map[float64][]string {
	col := make(map[string]int, len(names))
	for i, n := range names {
		col[n] = i
	}
	out := [2]map[float64][]string{{}, {}}
	for _, p := range pairs {
		i, ok := col[p.feature]
		if !ok || p.w < 0 || p.w > 1 {
			continue
		}
		row, ok := out[p.w][p.h]
		if !ok {
			row = make([]string, len(names))
			out[p.w][p.h] = row
		}
		row[i] = p.value
	}
	return out
}

// bytes estimates the memory j holds.
func (j *Joint) bytes() int64 {
	if j == nil {
		return 0
	}
	n := int64(8*len(j.Features)*len(j.Rows)) + int64(24*len(j.Rows))
	for _, r := range j.Categories {
		n += int64(24 + 16*len(r)) // the strings share the query's bytes
	}
	return n
}

// jointJSON is a Joint in a persisted profile: JSON has no NaN, so a
// missing value is null.
type jointJSON struct {
	Features    []string     `json:"features"`
	Rows        [][]*float64 `json:"rows"`
	Categorical []string     `json:"categorical,omitempty"`
	Categories  [][]string   `json:"categories,omitempty"`
}

func (j *Joint) toJSON() *jointJSON {
	if j == nil {
		return nil
	}
	out := &jointJSON{Features: j.Features, Rows: make([][]*float64, len(j.Rows)), Categorical: j.Categorical, Categories: j.Categories}
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
	if p.Categorical != nil {
		if len(p.Categories) != len(p.Rows) {
			return nil, fmt.Errorf("joint sample has %d rows of categories for %d rows", len(p.Categories), len(p.Rows))
		}
		for i, r := range p.Categories {
			if len(r) != len(p.Categorical) {
				return nil, fmt.Errorf("joint sample row %d has %d categories for %d categorical features", i, len(r), len(p.Categorical))
			}
		}
		j.Categorical, j.Categories = p.Categorical, p.Categories
	}
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
