package window

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
)

// A Reference can be persisted (Marshal, Unmarshal), so that a model's
// baseline outlives the raw rows it was computed from (the TTL) and the
// process that computed it. A persisted Reference is Pinned: ComputeCached
// uses it for its model, span and options without reading the reference
// window again, whether its rows are still there or not, and a late or
// forged event in the span does not move it.

// profileVersion is the layout Marshal writes; Unmarshal refuses others.
const profileVersion = 1

type profileJSON struct {
	Version    int           `json:"version"`
	Model      string        `json:"model"`
	Start      time.Time     `json:"start"`
	End        time.Time     `json:"end"`
	Options    Options       `json:"options"`
	Rows       int64         `json:"rows"`
	Newest     time.Time     `json:"newest"`
	Numeric    []numericJSON `json:"numeric"`
	Categories []catJSON     `json:"categories"`
	// CategoryStats per categorical feature (absent in profiles written
	// before categories were folded: then none is, and the distinct
	// values are the categories listed).
	CategoryStats []catStatJSON `json:"category_stats,omitempty"`
	// Joint is the reference's joint sample (Options.JointRows), absent
	// when off.
	Joint *jointJSON `json:"joint,omitempty"`
}

type catStatJSON struct {
	Feature  string `json:"feature"`
	Distinct int64  `json:"distinct"`
	Folded   bool   `json:"folded,omitempty"`
}

type numericJSON struct {
	Feature    string    `json:"feature"`
	Edges      []float64 `json:"edges"`
	RefBins    []int64   `json:"bins"`
	RefN       int64     `json:"n"`
	RefMin     float64   `json:"min"`
	RefMax     float64   `json:"max"`
	RefValues  []float64 `json:"values,omitempty"`
	RefCounts  []int64   `json:"counts,omitempty"`
	SampledRef bool      `json:"sampled,omitempty"`
}

type catJSON struct {
	Feature  string `json:"feature"`
	Category string `json:"category"`
	N        int64  `json:"n"`
	// Folded: the sum of the feature's categories beyond MaxCategories
	// (Category is empty).
	Folded bool `json:"folded,omitempty"`
}

// Marshal encodes r for a reference_profiles row.
func (r *Reference) Marshal() ([]byte, error) {
	p := profileJSON{Version: profileVersion, Model: r.model, Start: r.span.Start, End: r.span.End, Options: r.opts, Rows: r.rows, Newest: r.newest,
		Numeric: make([]numericJSON, 0, len(r.numeric)), Categories: make([]catJSON, 0, len(r.categories)), Joint: r.joint.toJSON()}
	for _, n := range r.numeric {
		if !finite(n.RefMin) || !finite(n.RefMax) || !allFinite(n.Edges) || !allFinite(n.RefValues) {
			return nil, fmt.Errorf("encode the reference of %s: feature %s has a value that is not finite", r.model, n.Feature)
		}
		p.Numeric = append(p.Numeric, numericJSON{Feature: n.Feature, Edges: n.Edges, RefBins: n.RefBins, RefN: n.RefN, RefMin: n.RefMin, RefMax: n.RefMax,
			RefValues: n.RefValues, RefCounts: n.RefCounts, SampledRef: n.SampledRef})
	}
	for _, c := range r.categories {
		p.Categories = append(p.Categories, catJSON{Feature: c.feature, Category: c.category, N: c.ref, Folded: c.folded})
	}
	for _, f := range slices.Sorted(maps.Keys(r.catStats)) {
		p.CategoryStats = append(p.CategoryStats, catStatJSON{Feature: f, Distinct: r.catStats[f].distinct, Folded: r.catStats[f].folded})
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode the reference of %s: %w", r.model, err)
	}
	return b, nil
}

// Unmarshal decodes a Reference Marshal encoded; it is Pinned.
func Unmarshal(data []byte) (*Reference, error) {
	var p profileJSON
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("decode a reference profile: %w", err)
	}
	if p.Version != profileVersion {
		return nil, fmt.Errorf("decode a reference profile: layout version %d, this monitor reads %d", p.Version, profileVersion)
	}
	num := make([]Numeric, 0, len(p.Numeric))
	for _, n := range p.Numeric {
		if len(n.RefBins) != len(n.Edges)+1 || len(n.RefValues) != len(n.RefCounts) {
			return nil, fmt.Errorf("decode the reference profile of %s: feature %s has %d edges, %d bins, %d values and %d counts", p.Model, n.Feature, len(n.Edges), len(n.RefBins), len(n.RefValues), len(n.RefCounts))
		}
		num = append(num, Numeric{Feature: n.Feature, Edges: n.Edges, RefBins: n.RefBins, RefN: n.RefN, RefMin: n.RefMin, RefMax: n.RefMax,
			RefValues: n.RefValues, RefCounts: n.RefCounts, SampledRef: n.SampledRef})
	}
	cats := make([]catRow, 0, len(p.Categories))
	for _, c := range p.Categories {
		cats = append(cats, catRow{feature: c.Feature, category: c.Category, ref: c.N, folded: c.Folded})
	}
	var stats map[string]catStats
	if len(p.CategoryStats) > 0 {
		stats = map[string]catStats{}
		for _, s := range p.CategoryStats {
			// distinct above MaxCategories marks the feature folded.
			d := s.Distinct
			if s.Folded {
				d = max(d, int64(p.Options.MaxCategories)+1)
			} else {
				d = min(d, int64(p.Options.MaxCategories))
			}
			stats[s.Feature] = catStats{distinct: d, ref: s.Distinct}
		}
	}
	joint, err := p.Joint.joint()
	if err != nil {
		return nil, fmt.Errorf("decode the reference profile of %s: %w", p.Model, err)
	}
	r := newReference(p.Model, Span{Start: p.Start.UTC(), End: p.End.UTC()}, p.Options, p.Rows, p.Newest, num, cats, stats)
	r.setJoint(joint)
	r.pinned = true
	return r, nil
}

// Pin marks r as persisted: ComputeCached then uses it whatever the raw
// reference rows say.
func (r *Reference) Pin() { r.pinned = true }

// Pinned reports whether r is a persisted reference.
func (r *Reference) Pinned() bool { return r != nil && r.pinned }

// Span is the reference window r aggregates.
func (r *Reference) Span() Span { return r.span }

// Rows is how many rows the reference window held when r was computed.
func (r *Reference) Rows() int64 { return r.rows }

// Features is how many numeric and categorical features r holds.
func (r *Reference) Features() (numeric, categorical int) {
	seen := map[string]struct{}{}
	for _, c := range r.categories {
		seen[c.feature] = struct{}{}
	}
	return len(r.numeric), len(seen)
}

// Options are the options r was computed with; a pinned Reference is used
// only with the same (after defaults).
func (r *Reference) Options() Options { return r.opts }

// SameOptions reports whether opts (after defaults) are those r was
// computed with.
func (r *Reference) SameOptions(opts Options) bool {
	opts.defaults()
	return r.opts == opts
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

func allFinite(xs []float64) bool {
	for _, x := range xs {
		if !finite(x) {
			return false
		}
	}
	return true
}
