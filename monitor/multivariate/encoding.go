package multivariate

import (
	"sort"
)

// TopCategories is the most one-hot columns a categorical feature gets:
// its reference's most frequent categories, each at least MinCategoryShare
// of the reference's rows.
const TopCategories = 10

// MinCategoryShare is the least share of the reference's rows a category
// needs for a column of its own. A rarer one would be a column almost
// always 0 whose standardised 1 (√((1−p)/p), 70 for 1 in 5,000) swamps a
// row's reconstruction error and the classifier's scale.
const MinCategoryShare = 0.01

// Encoder one-hot encodes categorical features for the multivariate
// methods: a column per kept category, named "feature=category", 1 where
// the row has that category. A category not kept (rare, or new in the
// current window) and a missing value are 0 in every column of the
// feature, as scikit-learn's OneHotEncoder(handle_unknown="ignore") does
// with an unknown category; the columns then go through the same
// standardisation, PCA and classifier as the numeric ones.
type Encoder struct {
	// Features are the categorical features with at least one kept
	// category; Categories[i] are Features[i]'s kept categories, the
	// most frequent first (then by name).
	Features   []string
	Categories [][]string
}

// FitEncoder keeps, per feature of features (columns of rows, "" for a
// missing value), the reference's at most top most frequent categories
// with at least minShare of the rows.
func FitEncoder(features []string, rows [][]string, top int, minShare float64) *Encoder {
	e := &Encoder{}
	for j, f := range features {
		counts := map[string]int{}
		for _, r := range rows {
			if j < len(r) && r[j] != "" {
				counts[r[j]]++
			}
		}
		cats := make([]string, 0, len(counts))
		for c, n := range counts {
			if float64(n) >= minShare*float64(len(rows)) {
				cats = append(cats, c)
			}
		}
		sort.Slice(cats, func(a, b int) bool {
			if counts[cats[a]] != counts[cats[b]] {
				return counts[cats[a]] > counts[cats[b]]
			}
			return cats[a] < cats[b]
		})
		if len(cats) > top {
			cats = cats[:top]
		}
		if len(cats) > 0 {
			e.Features = append(e.Features, f)
			e.Categories = append(e.Categories, cats)
		}
	}
	return e
}

// Columns names the encoded columns, "feature=category"; Origins gives each
// column's feature.
func (e *Encoder) Columns() (names, origins []string) {
	for i, f := range e.Features {
		for _, c := range e.Categories[i] {
			names = append(names, f+"="+c)
			origins = append(origins, f)
		}
	}
	return names, origins
}

// Encode returns rows' one-hot columns (features names rows' columns,
// matched by name: a window's features may come in another order or lack
// one of the encoder's, whose columns are then 0).
func (e *Encoder) Encode(features []string, rows [][]string) [][]float64 {
	col := make(map[string]int, len(features))
	for j, f := range features {
		col[f] = j
	}
	type slot struct {
		src  int // column of rows, -1 absent
		base int // first encoded column
		cats map[string]int
	}
	slots := make([]slot, len(e.Features))
	width := 0
	for i, f := range e.Features {
		s := slot{src: -1, base: width, cats: map[string]int{}}
		if j, ok := col[f]; ok {
			s.src = j
		}
		for k, c := range e.Categories[i] {
			s.cats[c] = k
		}
		width += len(e.Categories[i])
		slots[i] = s
	}
	out := make([][]float64, len(rows))
	for r, row := range rows {
		x := make([]float64, width)
		for _, s := range slots {
			if s.src < 0 || s.src >= len(row) {
				continue
			}
			if k, ok := s.cats[row[s.src]]; ok {
				x[s.base+k] = 1
			}
		}
		out[r] = x
	}
	return out
}
