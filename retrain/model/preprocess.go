package model

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
)

// DefaultTopK is the number of categories per categorical feature that get
// their own one-hot column when PreprocessOptions.TopK is 0.
const DefaultTopK = 20

// DefaultMaxFeatures is the most columns a Preprocessor produces when
// PreprocessOptions.MaxFeatures is 0. The trainers accumulate a d×d
// Hessian (8·d² bytes per worker) and factor it in d³/3 steps, so d is
// what bounds a run's memory and time: 1024 columns are 8 MiB a worker.
const DefaultMaxFeatures = 1024

// PreprocessOptions configure how a Preprocessor is fitted.
type PreprocessOptions struct {
	// TopK is the number of most frequent training categories per
	// categorical feature that get their own column; the rest share the
	// feature's "other" column. 0 means DefaultTopK.
	TopK int `json:"top_k" yaml:"top_k"`
	// MissingIndicators adds a 0/1 column for each numeric feature that
	// was missing in at least one training row.
	MissingIndicators bool `json:"missing_indicators" yaml:"missing_indicators"`
	// MaxFeatures is the most output columns (numeric features, missing
	// indicators, one-hot and "other" columns together); 0 means
	// DefaultMaxFeatures. Features present in the most training rows are
	// kept first, then the most frequent categories of the kept
	// categorical features; the rest are ignored like features unseen in
	// training. The columns are chosen before any matrix is allocated.
	MaxFeatures int `json:"max_features" yaml:"max_features"`
}

func (o PreprocessOptions) maxFeatures() int {
	if o.MaxFeatures == 0 {
		return DefaultMaxFeatures
	}
	return o.MaxFeatures
}

func (o PreprocessOptions) topK() int {
	if o.TopK == 0 {
		return DefaultTopK
	}
	return o.TopK
}

// Preprocessor turns the feature maps of a record into dense columns. It is
// fitted on training data only and serialised with the model; see the
// package documentation for the columns it produces.
type Preprocessor struct {
	Numeric     []NumericFeature     `json:"numeric"`
	Categorical []CategoricalFeature `json:"categorical"`
}

// NumericFeature is the standardisation of one numeric feature.
type NumericFeature struct {
	Name string  `json:"name"`
	Mean float64 `json:"mean"`
	// Std is the population standard deviation, 1 when it was 0.
	Std float64 `json:"std"`
	// Missing is the fraction of training rows without the feature.
	Missing float64 `json:"missing_fraction"`
	// Indicator says whether the feature has a missing-indicator column.
	Indicator bool `json:"missing_indicator"`
}

// CategoricalFeature is the one-hot encoding of one categorical feature.
type CategoricalFeature struct {
	Name string `json:"name"`
	// Categories have a column each, in column order; everything else goes
	// to the feature's "other" column.
	Categories []string `json:"categories"`
}

// Columns returns the names of the output columns in order.
func (p *Preprocessor) Columns() []string {
	var cols []string
	for _, f := range p.Numeric {
		cols = append(cols, f.Name)
	}
	for _, f := range p.Numeric {
		if f.Indicator {
			cols = append(cols, f.Name+":missing")
		}
	}
	for _, f := range p.Categorical {
		for _, c := range f.Categories {
			cols = append(cols, f.Name+"="+c)
		}
		cols = append(cols, f.Name+":other")
	}
	return cols
}

// FitPreprocessor fits a Preprocessor in one pass over data. Rows whose
// target label is null are ignored, so the statistics come from exactly the
// rows a trainer uses.
func FitPreprocessor(ctx context.Context, data Batches, target Target, opts PreprocessOptions) (*Preprocessor, error) {
	if err := target.validate(); err != nil {
		return nil, err
	}
	if opts.TopK < 0 {
		return nil, fmt.Errorf("preprocess.top_k: %d is negative", opts.TopK)
	}
	if opts.MaxFeatures < 0 {
		return nil, fmt.Errorf("preprocess.max_features: %d is negative", opts.MaxFeatures)
	}
	type numStat struct {
		n          int64
		mean, m2   float64
		lastRowSet int64
	}
	num := map[string]*numStat{}
	cat := map[string]map[string]int64{}
	var rows int64
	var labels []float64
	for rec, err := range data(ctx) {
		if err != nil {
			return nil, fmt.Errorf("read training batch: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, err := featureColumns(rec)
		if err != nil {
			return nil, err
		}
		if labels, err = target.Labels(rec, labels); err != nil {
			return nil, err
		}
		for i, y := range labels {
			if math.IsNaN(y) {
				continue
			}
			rows++
			if c.numeric != nil && c.numeric.IsValid(i) {
				lo, hi := c.numeric.ValueOffsets(i)
				vals := c.numItems.Float64Values()
				for j := int(lo); j < int(hi); j++ {
					if c.numItems.IsNull(j) || math.IsNaN(vals[j]) {
						continue
					}
					k := c.numKeys.Value(j)
					st := num[k]
					if st == nil {
						st = &numStat{}
						num[strings.Clone(k)] = st
					}
					if st.lastRowSet == rows {
						continue // a duplicate key in one row counts once
					}
					st.lastRowSet = rows
					x := vals[j]
					st.n++
					d := x - st.mean
					st.mean += d / float64(st.n)
					st.m2 += d * (x - st.mean)
				}
			}
			if c.categorical != nil && c.categorical.IsValid(i) {
				lo, hi := c.categorical.ValueOffsets(i)
				for j := int(lo); j < int(hi); j++ {
					if c.catItems.IsNull(j) {
						continue
					}
					k := c.catKeys.Value(j)
					counts := cat[k]
					if counts == nil {
						counts = map[string]int64{}
						cat[strings.Clone(k)] = counts
					}
					v := c.catItems.Value(j)
					if _, ok := counts[v]; ok {
						counts[v]++
					} else {
						counts[strings.Clone(v)] = 1
					}
				}
			}
		}
	}
	if rows == 0 {
		return nil, ErrNoRows
	}
	// Choose the columns within the budget, most frequent first: each
	// candidate is a numeric feature (its column and missing indicator,
	// counted by the rows it is present in), a categorical feature (its
	// "other" column, counted by the rows it is present in) or one of the
	// TopK categories of a categorical feature (its rows). A feature sorts
	// before its categories, whose counts are at most its own, so a
	// category is only taken after its feature.
	type candidate struct {
		n       int64
		kind    int // 0 numeric, 1 categorical feature, 2 category
		name, v string
	}
	var cands []candidate
	for name, st := range num {
		cands = append(cands, candidate{st.n, 0, name, ""})
	}
	k := opts.topK()
	for name, counts := range cat {
		var total int64
		all := make([]candidate, 0, len(counts))
		for v, n := range counts {
			total += n
			all = append(all, candidate{n, 2, name, v})
		}
		slices.SortFunc(all, func(a, b candidate) int {
			if c := cmp.Compare(b.n, a.n); c != 0 {
				return c
			}
			return strings.Compare(a.v, b.v)
		})
		cands = append(cands, candidate{total, 1, name, ""})
		cands = append(cands, all[:min(k, len(all))]...)
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		if c := cmp.Compare(b.n, a.n); c != 0 {
			return c
		}
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := cmp.Compare(a.kind, b.kind); c != 0 { // a feature before its categories
			return c
		}
		return strings.Compare(a.v, b.v)
	})
	budget := opts.maxFeatures()
	p := &Preprocessor{}
	kept := map[string]int{} // categorical feature → index into p.Categorical
	for _, c := range cands {
		switch c.kind {
		case 0:
			st := num[c.name]
			missing := rows - st.n
			indicator := opts.MissingIndicators && missing > 0
			cost := 1
			if indicator {
				cost = 2
			}
			if cost > budget {
				continue
			}
			budget -= cost
			std := math.Sqrt(st.m2 / float64(st.n))
			if std == 0 || math.IsNaN(std) {
				std = 1
			}
			p.Numeric = append(p.Numeric, NumericFeature{
				Name:      c.name,
				Mean:      st.mean,
				Std:       std,
				Missing:   float64(missing) / float64(rows),
				Indicator: indicator,
			})
		case 1:
			if budget < 1 {
				continue
			}
			budget--
			kept[c.name] = len(p.Categorical)
			p.Categorical = append(p.Categorical, CategoricalFeature{Name: c.name, Categories: []string{}})
		case 2:
			i, ok := kept[c.name]
			if !ok || budget < 1 {
				continue
			}
			budget--
			p.Categorical[i].Categories = append(p.Categorical[i].Categories, c.v)
		}
	}
	// Categories in their column order: count descending, then category
	// (the global order above interleaves features at equal counts).
	for i := range p.Categorical {
		f := &p.Categorical[i]
		counts := cat[f.Name]
		slices.SortFunc(f.Categories, func(a, b string) int {
			if c := cmp.Compare(counts[b], counts[a]); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
	}
	slices.SortFunc(p.Numeric, func(a, b NumericFeature) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(p.Categorical, func(a, b CategoricalFeature) int { return strings.Compare(a.Name, b.Name) })
	return p, nil
}

// encoder is a Preprocessor compiled for fast lookups. It is read-only and
// safe for concurrent use.
type encoder struct {
	num   map[string]int // feature → index into numeric
	mean  []float64
	inv   []float64 // 1/std
	ind   []int     // indicator column, or -1
	cat   map[string]int
	base  []int // first column of each categorical feature
	level []map[string]int
	other []int
	ncols int
}

func newEncoder(p *Preprocessor) *encoder {
	e := &encoder{num: map[string]int{}, cat: map[string]int{}}
	col := 0
	for i, f := range p.Numeric {
		e.num[f.Name] = i
		e.mean = append(e.mean, f.Mean)
		e.inv = append(e.inv, 1/f.Std)
		col++
	}
	for _, f := range p.Numeric {
		if f.Indicator {
			e.ind = append(e.ind, col)
			col++
		} else {
			e.ind = append(e.ind, -1)
		}
	}
	for i, f := range p.Categorical {
		e.cat[f.Name] = i
		e.base = append(e.base, col)
		lv := make(map[string]int, len(f.Categories))
		for j, c := range f.Categories {
			lv[c] = j
		}
		e.level = append(e.level, lv)
		col += len(f.Categories)
		e.other = append(e.other, col)
		col++
	}
	e.ncols = col
	return e
}

// encode writes the preprocessed rows lo to hi of c into x, row-major with
// the given stride (≥ ncols), row lo first; columns from ncols to stride are
// left alone, so a trainer can keep its intercept column there.
func (e *encoder) encode(c columns, lo, hi int, x []float64, stride int) {
	var numVals []float64
	if c.numItems != nil {
		numVals = c.numItems.Float64Values()
	}
	var numCache, catCache keyCache
	for i := lo; i < hi; i++ {
		xi := x[(i-lo)*stride : (i-lo)*stride+e.ncols]
		clear(xi)
		for _, col := range e.ind {
			if col >= 0 {
				xi[col] = 1
			}
		}
		if c.numeric != nil && c.numeric.IsValid(i) {
			from, to := c.numeric.ValueOffsets(i)
			for j := int(from); j < int(to); j++ {
				f, ok := numCache.lookup(j-int(from), c.numKeys.Value(j), e.num)
				if !ok || c.numItems.IsNull(j) || math.IsNaN(numVals[j]) {
					continue
				}
				xi[f] = (numVals[j] - e.mean[f]) * e.inv[f]
				if col := e.ind[f]; col >= 0 {
					xi[col] = 0
				}
			}
		}
		if c.categorical != nil && c.categorical.IsValid(i) {
			from, to := c.categorical.ValueOffsets(i)
			for j := int(from); j < int(to); j++ {
				f, ok := catCache.lookup(j-int(from), c.catKeys.Value(j), e.cat)
				if !ok || c.catItems.IsNull(j) {
					continue
				}
				if l, ok := e.level[f][c.catItems.Value(j)]; ok {
					xi[e.base[f]+l] = 1
				} else {
					xi[e.other[f]] = 1
				}
			}
		}
	}
}

// keyCache remembers which feature the key at each position of the last
// rows' maps was. Rows written by one producer carry the same keys in the
// same order (the ingest builders sort them), so comparing a short string
// replaces most map lookups, which dominate encoding otherwise.
type keyCache []struct {
	key string
	idx int
	ok  bool
}

func (c *keyCache) lookup(pos int, key string, m map[string]int) (int, bool) {
	if pos < len(*c) {
		if e := &(*c)[pos]; e.key == key {
			return e.idx, e.ok
		}
	}
	idx, ok := m[key]
	switch {
	case pos < len(*c):
		(*c)[pos].key, (*c)[pos].idx, (*c)[pos].ok = key, idx, ok
	case pos == len(*c) && pos < 1024:
		*c = append(*c, struct {
			key string
			idx int
			ok  bool
		}{key, idx, ok})
	}
	return idx, ok
}
