package window

import (
	"context"
	"time"

	"github.com/driftwatch/driftwatch/monitor/stat"
)

// Reference is what ComputeCached learned about one model's reference
// window: the numeric features' edges, range, bin counts and sample, and
// the categorical counts. It is only valid for the same model, span and
// options, while the reference keeps its row count and newest ingested_at
// (an event ingested late into the reference, or removed by TTL, changes
// one of them).
type Reference struct {
	model      string
	span       Span
	opts       Options
	rows       int64
	newest     time.Time
	numeric    []Numeric // reference fields only
	categories []catRow  // ref > 0 only
	// catStats per categorical feature: its distinct values in the
	// reference and whether the categories were folded (then categories
	// are not all of the reference's).
	catStats map[string]refCats
	bytes    int64
	// pinned: persisted (see profile.go); valid whatever the raw rows say.
	pinned bool
	// joint is the reference's joint sample (Options.JointRows).
	joint *Joint
}

// setJoint keeps the reference's joint sample.
func (r *Reference) setJoint(j *Joint) {
	r.joint = j
	r.bytes += j.bytes()
}

// refCats is what a Reference knows of one categorical feature.
type refCats struct {
	distinct int64
	folded   bool
}

// newReference keeps the reference's side of a computation; stats are
// the category statistics of the computation (nil: count the distinct
// values from cats, none folded).
func newReference(model string, span Span, opts Options, rows int64, newest time.Time, num []Numeric, cats []catRow, stats map[string]catStats) *Reference {
	r := &Reference{model: model, span: span, opts: opts, rows: rows, newest: newest, catStats: map[string]refCats{}}
	for _, n := range num {
		r.numeric = append(r.numeric, Numeric{Feature: n.Feature, Edges: n.Edges, RefBins: n.RefBins, RefN: n.RefN,
			RefMin: n.RefMin, RefMax: n.RefMax, RefValues: n.RefValues, RefCounts: n.RefCounts, SampledRef: n.SampledRef,
			RefSummary: stat.Summarize(stat.Sample{Values: n.RefValues, Counts: n.RefCounts})})
		r.bytes += int64(len(n.Feature)) + 8*int64(len(n.Edges)+len(n.RefBins)+2*len(n.RefValues)) + 200
	}
	for _, c := range cats {
		if c.ref > 0 {
			r.categories = append(r.categories, catRow{feature: c.feature, category: c.category, ref: c.ref, folded: c.folded})
			r.bytes += int64(len(c.feature)+len(c.category)) + 48
			if stats == nil {
				r.catStats[c.feature] = refCats{distinct: r.catStats[c.feature].distinct + 1}
			}
		}
	}
	for f, s := range stats {
		if s.ref > 0 {
			r.catStats[f] = refCats{distinct: s.ref, folded: s.distinct > int64(opts.MaxCategories)}
		}
	}
	return r
}

// Bytes estimates the memory r holds.
func (r *Reference) Bytes() int64 {
	if r == nil {
		return 0
	}
	return r.bytes
}

func (r *Reference) valid(model string, span Span, opts Options, rows int64, newest time.Time) bool {
	if r != nil && r.pinned {
		return r.model == model && r.span.Start.Equal(span.Start) && r.span.End.Equal(span.End) && r.opts == opts
	}
	return r != nil && r.model == model && r.span.Start.Equal(span.Start) && r.span.End.Equal(span.End) &&
		r.opts == opts && r.rows == rows && r.newest.Equal(newest)
}

// numericFor returns the cached numeric features with the current
// window's counts, ready for numericBins.
func (r *Reference) numericFor(ctx context.Context, q *querier) ([]Numeric, error) {
	curN, err := q.currentCounts(ctx)
	if err != nil {
		return nil, err
	}
	var out []Numeric // nil without features, as numericEdges
	if len(r.numeric) > 0 {
		out = make([]Numeric, len(r.numeric))
	}
	for i, n := range r.numeric {
		n.CurN = curN[n.Feature]
		n.CurBins = make([]int64, len(n.RefBins))
		out[i] = n
	}
	return out, nil
}

// NewTestReference returns an empty Reference of the given size, for tests
// of caches; it is valid for no window.
func NewTestReference(bytes int64) *Reference { return &Reference{bytes: bytes} }
