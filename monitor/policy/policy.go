// Package policy turns one window's aggregates into drift verdicts: which
// methods run, their thresholds, when a result is "insufficient", how
// p-values are corrected across features, and when a drift counts as
// sustained. It is pure: the monitor feeds it aggregates and history and
// writes out what it returns.
//
// Noise control, and why:
//
//   - Every method has a default threshold (p-value tests 0.05, distances
//     0.1, PSI 0.2), overridable per model and per feature.
//   - A feature with fewer than MinSamples rows in either window is
//     "insufficient", never "drifted": small windows swing by chance.
//   - p-values of one method are adjusted with Benjamini–Hochberg across the
//     window's features before they are compared with the threshold: with
//     60 features and a 0.05 test, three would "drift" by chance every
//     window without it.
//   - A feature is drifted in a window when every one of its decision
//     methods says so — by default a test (KS, chi-square) and PSI: the
//     shift must be both statistically significant and large enough to
//     matter. Large windows make every test significant; PSI alone is blind
//     to sample size. Together they page for real shifts.
//   - A feature counts as drifted for alerts and triggers (sustained) only
//     after Consecutive windows in a row (default 2), so one odd window
//     does not page anybody.
package policy

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/driftwatch/driftwatch/monitor/multivariate"
	"github.com/driftwatch/driftwatch/monitor/stat"
	"github.com/driftwatch/driftwatch/monitor/window"
)

// Statuses of a result.
const (
	StatusOK           = "ok"
	StatusDrifted      = "drifted"
	StatusInsufficient = "insufficient"
	StatusUndefined    = "undefined"
	// StatusSkipped: the method was not computed because it means nothing
	// on this feature; the row's Note says why.
	StatusSkipped = "skipped"
)

// Kinds of a result.
const (
	KindDrift           = "drift"
	KindPredictionDrift = "prediction_drift"
	KindDataQuality     = "data_quality"
)

// Data-quality checks (the method column of data_quality rows).
const (
	CheckMissingShare    = "missing_share"
	CheckOutOfRangeShare = "out_of_range_share"
	CheckVolumeRatio     = "volume_ratio"
	// CheckDeadLetterShare rows have the dead-letter reason as their
	// feature: the share of the model's events in the window that ingest
	// rejected for it.
	CheckDeadLetterShare = "dead_letter_share"
	// CheckHighCardinality rows report a categorical feature with more
	// distinct values in the windows than MaxCategories (the value).
	CheckHighCardinality = "high_cardinality"
)

// ModelFeature is the feature name of model-level checks (volume).
const ModelFeature = "__all"

// Config is the drift policy, for every model or, in Models, one model.
type Config struct {
	// NumericMethods and CategoricalMethods run on every feature.
	NumericMethods     []string `yaml:"numeric_methods"`
	CategoricalMethods []string `yaml:"categorical_methods"`
	// DecideNumeric and DecideCategorical are the methods that must all
	// flag a feature for it to be drifted; each must also be run.
	DecideNumeric     []string `yaml:"decide_numeric"`
	DecideCategorical []string `yaml:"decide_categorical"`
	// Thresholds per method: a p-value below it, or a distance at or above
	// it, is drift. Missing methods take DefaultThresholds.
	Thresholds map[string]float64 `yaml:"thresholds"`
	// Features overrides thresholds per feature: feature → method → value.
	Features map[string]map[string]float64 `yaml:"features"`
	// MinSamples is the fewest rows per window and feature for a verdict.
	MinSamples int64 `yaml:"min_samples"`
	// Consecutive is how many windows in a row a feature must drift before
	// it counts as sustained.
	Consecutive int `yaml:"consecutive"`
	// MissingShareIncrease, OutOfRangeShare, DeadLetterShare (per reason)
	// and the volume bounds are the data-quality thresholds.
	MissingShareIncrease float64 `yaml:"missing_share_increase"`
	OutOfRangeShare      float64 `yaml:"out_of_range_share"`
	DeadLetterShare      float64 `yaml:"dead_letter_share"`
	VolumeRatioMin       float64 `yaml:"volume_ratio_min"`
	VolumeRatioMax       float64 `yaml:"volume_ratio_max"`
	// MinImportance keeps the drift of an input feature whose share of
	// the champion's feature importance is below it from triggering a
	// retrain (see ApplyImportance); 0 is off.
	MinImportance float64 `yaml:"min_importance"`
	// Multivariate is the drift no single feature shows (package
	// multivariate): the features __multivariate_reconstruction and
	// __multivariate_classifier, decided and made sustained like any
	// feature's drift.
	Multivariate multivariate.Config `yaml:"multivariate"`
}

// DefaultThresholds are the per-method defaults.
var DefaultThresholds = map[string]float64{
	stat.MethodPSI: 0.2, stat.MethodKS: 0.05, stat.MethodChiSquare: 0.05, stat.MethodAndersonDarling: 0.05,
	stat.MethodCramerVonMises: 0.05, stat.MethodJensenShannon: 0.1, stat.MethodHellinger: 0.1,
	stat.MethodWassersteinNorm: 0.1, stat.MethodLInfinity: 0.1, stat.MethodUnseenShare: 0.1,
	stat.MethodWasserstein: math.Inf(1), // in the column's units: set one per feature to use it
}

// Default returns the default policy.
func Default() Config {
	return Config{
		NumericMethods:     []string{stat.MethodKS, stat.MethodPSI, stat.MethodWassersteinNorm, stat.MethodJensenShannon},
		CategoricalMethods: []string{stat.MethodChiSquare, stat.MethodPSI, stat.MethodJensenShannon, stat.MethodUnseenShare},
		DecideNumeric:      []string{stat.MethodKS, stat.MethodPSI},
		DecideCategorical:  []string{stat.MethodChiSquare, stat.MethodPSI},
		Thresholds:         map[string]float64{},
		MinSamples:         100,
		Consecutive:        2,

		MissingShareIncrease: 0.1,
		OutOfRangeShare:      0.05,
		DeadLetterShare:      0.01,
		VolumeRatioMin:       0.5,
		VolumeRatioMax:       2,

		Multivariate: multivariate.DefaultConfig(),
	}
}

var numericMethods = map[string]bool{stat.MethodKS: true, stat.MethodPSI: true, stat.MethodWasserstein: true, stat.MethodWassersteinNorm: true,
	stat.MethodJensenShannon: true, stat.MethodHellinger: true, stat.MethodAndersonDarling: true, stat.MethodCramerVonMises: true}
var categoricalMethods = map[string]bool{stat.MethodChiSquare: true, stat.MethodPSI: true, stat.MethodJensenShannon: true,
	stat.MethodHellinger: true, stat.MethodLInfinity: true, stat.MethodUnseenShare: true}
var pValueMethods = map[string]bool{stat.MethodKS: true, stat.MethodChiSquare: true, stat.MethodAndersonDarling: true, stat.MethodCramerVonMises: true}

// Validate names every bad setting under prefix (for example "policy").
func (c Config) Validate(prefix string) error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(prefix+"."+f, a...)) }
	for _, m := range c.NumericMethods {
		if !numericMethods[m] {
			bad("numeric_methods: %q is not a numeric method (one of %s)", m, strings.Join(sortedKeys(numericMethods), ", "))
		}
	}
	for _, m := range c.CategoricalMethods {
		if !categoricalMethods[m] {
			bad("categorical_methods: %q is not a categorical method (one of %s)", m, strings.Join(sortedKeys(categoricalMethods), ", "))
		}
	}
	for _, m := range c.DecideNumeric {
		if !slices.Contains(c.NumericMethods, m) {
			bad("decide_numeric: %q is not among numeric_methods", m)
		}
	}
	for _, m := range c.DecideCategorical {
		if !slices.Contains(c.CategoricalMethods, m) {
			bad("decide_categorical: %q is not among categorical_methods", m)
		}
	}
	if len(c.DecideNumeric) == 0 || len(c.DecideCategorical) == 0 {
		bad("decide_numeric and decide_categorical: each needs at least one method")
	}
	for m, v := range c.Thresholds {
		if !numericMethods[m] && !categoricalMethods[m] {
			bad("thresholds: unknown method %q", m)
		} else if !(v > 0) {
			bad("thresholds.%s: must be positive, got %g", m, v)
		}
	}
	for f, ms := range c.Features {
		for m, v := range ms {
			if !numericMethods[m] && !categoricalMethods[m] {
				bad("features.%s: unknown method %q", f, m)
			} else if !(v > 0) {
				bad("features.%s.%s: must be positive, got %g", f, m, v)
			}
		}
	}
	if c.MinSamples < 1 {
		bad("min_samples: must be at least 1, got %d", c.MinSamples)
	}
	if c.Consecutive < 1 {
		bad("consecutive: must be at least 1, got %d", c.Consecutive)
	}
	if !(c.DeadLetterShare >= 0 && c.DeadLetterShare < 1) {
		bad("dead_letter_share: must be in [0, 1), got %g", c.DeadLetterShare)
	}
	if !(c.MinImportance >= 0 && c.MinImportance <= 1) {
		bad("min_importance: must be in [0, 1] (a share of the importance), got %g", c.MinImportance)
	}
	if c.Multivariate.Enabled {
		if err := c.Multivariate.Validate(prefix + ".multivariate"); err != nil {
			errs = append(errs, err)
		}
	}
	if c.VolumeRatioMin < 0 || c.VolumeRatioMax <= c.VolumeRatioMin {
		bad("volume_ratio_min/max: need 0 <= min < max, got %g and %g", c.VolumeRatioMin, c.VolumeRatioMax)
	}
	return errors.Join(errs...)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Threshold returns the threshold for method on feature.
func (c Config) Threshold(feature, method string) float64 {
	if v, ok := c.Features[feature][method]; ok {
		return v
	}
	if v, ok := c.Thresholds[method]; ok {
		return v
	}
	return DefaultThresholds[method]
}

// Row is one result: a drift_results row.
type Row struct {
	Feature          string
	Kind             string
	Method           string
	Value            float64
	PValue           float64 // NaN when none
	PValueAdjusted   float64 // NaN when none
	Threshold        float64
	Drifted          bool
	Sustained        bool
	Status           string
	Samples          int64
	ReferenceSamples int64
	// Note says why the result is what it is when Status alone does not
	// (why a method was skipped); usually empty.
	Note string
	// Leaned is, on a domain classifier's row, the columns it leaned on
	// most (the explanation; also in Note).
	Leaned []multivariate.Leaning
}

// Verdict is one window's outcome.
type Verdict struct {
	Rows []Row
	// Drifted lists the features drifted in this window (decision methods
	// agree), Sustained those drifted for Consecutive windows; both sorted.
	Drifted, Sustained []string
	// Insufficient lists features without enough rows for a verdict.
	Insufficient []string
	// Skipped lists features whose decision methods were skipped (see
	// highCardinality).
	Skipped []string
	// QualityIssues lists "feature/check" pairs beyond their thresholds.
	QualityIssues []string
	// Unimportant lists the features taken out of Sustained by
	// ApplyImportance: sustained drift in features whose importance is
	// below min_importance, recorded but triggering nothing; sorted.
	Unimportant []string
}

// NoteBelowMinImportance starts the note of a feature's rows whose
// sustained drift ApplyImportance kept from triggering.
const NoteBelowMinImportance = "below min_importance"

// ApplyImportance takes out of v.Sustained (into v.Unimportant) the input
// features (kind drift) whose share of the champion's importance is below
// min, and notes why on their rows. A feature missing from importance is
// left alone (nothing is known of it), and so is everything when
// importance is empty (no importance registered) or min is 0. The rows
// keep their drifted and sustained flags: the drift is real and shown; it
// is only not a reason to retrain.
func ApplyImportance(v *Verdict, importance map[string]float64, min float64) {
	if !(min > 0) || len(importance) == 0 {
		return
	}
	below := map[string]string{}
	for _, r := range v.Rows {
		if r.Kind != KindDrift || !slices.Contains(v.Sustained, r.Feature) {
			continue
		}
		if imp, ok := importance[r.Feature]; ok && imp < min {
			below[r.Feature] = fmt.Sprintf("%s (importance %.4g < %.4g): recorded, no trigger", NoteBelowMinImportance, imp, min)
		}
	}
	if len(below) == 0 {
		return
	}
	kept := v.Sustained[:0:0]
	for _, f := range v.Sustained {
		if _, ok := below[f]; ok {
			v.Unimportant = append(v.Unimportant, f)
		} else {
			kept = append(kept, f)
		}
	}
	v.Sustained = kept
	for i := range v.Rows {
		if note, ok := below[v.Rows[i].Feature]; ok && v.Rows[i].Kind == KindDrift && v.Rows[i].Note == "" {
			v.Rows[i].Note = note
		}
	}
}

// History says whether each feature was drifted in the windows before this
// one, oldest first.
type History map[string][]bool

// Evaluate computes every configured method on snap and decides.
func Evaluate(snap *window.Snapshot, c Config, hist History) Verdict {
	rows := computeRows(snap, c)
	if c.Multivariate.Enabled {
		rows = append(rows, multivariateRows(snap.RefJoint, snap.CurJoint, c)...)
	}
	adjust([][]Row{rows})
	return decide(snap, c, hist, rows)
}

// EvaluateSegments evaluates the slices of one window (snaps, with the
// History of each): as Evaluate does, except that Benjamini–Hochberg runs
// per method across the features of every slice together (features ×
// slices), so that ten slices do not give ten times the false alarms.
func EvaluateSegments(snaps []*window.Snapshot, c Config, hists []History) []Verdict {
	sets := make([][]Row, len(snaps))
	for i, s := range snaps {
		sets[i] = computeRows(s, c)
	}
	adjust(sets)
	out := make([]Verdict, len(snaps))
	for i, s := range snaps {
		var h History
		if i < len(hists) {
			h = hists[i]
		}
		out[i] = decide(s, c, h, sets[i])
	}
	return out
}

// computeRows computes every configured method on snap's features, not
// yet adjusted nor decided.
func computeRows(snap *window.Snapshot, c Config) []Row {
	var rows []Row
	add := func(r Row) { rows = append(rows, r) }
	// The numeric methods on samples (KS, Wasserstein, …) cost most: the
	// features are computed on all CPUs, and their rows added in order.
	numericRowsOf := make([][]Row, len(snap.Numeric))
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range min(runtime.GOMAXPROCS(0), len(snap.Numeric)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(snap.Numeric); i = int(next.Add(1) - 1) {
				numericRowsOf[i] = numericRows(&snap.Numeric[i], c)
			}
		}()
	}
	wg.Wait()
	for _, rs := range numericRowsOf {
		for _, r := range rs {
			add(r)
		}
	}
	for i := range snap.Categorical {
		for _, r := range categoricalRows(&snap.Categorical[i], c, snap.MaxCategories) {
			add(r)
		}
	}

	return rows
}

// adjust runs Benjamini–Hochberg per method across the rows of every set
// together (one set per slice, or the population's alone), and decides
// each row against its threshold.
func adjust(sets [][]Row) {
	type at struct{ set, row int }
	byMethod := map[string][]at{}
	for s, rows := range sets {
		for i, r := range rows {
			if pValueMethods[r.Method] && r.Status == "" {
				byMethod[r.Method] = append(byMethod[r.Method], at{s, i})
			}
		}
	}
	for _, idx := range byMethod {
		ps := make([]float64, len(idx))
		for j, x := range idx {
			ps[j] = sets[x.set][x.row].PValue
		}
		adj, _, err := stat.BenjaminiHochberg(ps, 0.05)
		for j, x := range idx {
			r := &sets[x.set][x.row]
			if err != nil {
				r.PValueAdjusted = r.PValue
			} else {
				r.PValueAdjusted = adj[j]
			}
		}
	}
	for _, rows := range sets {
		decideRows(rows)
	}
}

// decideRows compares each computed row with its threshold.
func decideRows(rows []Row) {
	for i := range rows {
		r := &rows[i]
		if r.Status != "" {
			continue
		}
		if pValueMethods[r.Method] {
			r.Drifted = r.PValueAdjusted < r.Threshold
		} else {
			r.PValueAdjusted = math.NaN()
			r.Drifted = r.Value >= r.Threshold
		}
		r.Status = StatusOK
		if r.Drifted {
			r.Status = StatusDrifted
		}
	}
}

// decide turns one window's adjusted rows into its verdict: features
// drifted and sustained (with hist), insufficient, skipped, and the
// data-quality rows.
func decide(snap *window.Snapshot, c Config, hist History, rows []Row) Verdict {
	var v Verdict
	byFeature := map[string][]int{} // feature → indexes into rows
	for i, r := range rows {
		byFeature[r.Feature] = append(byFeature[r.Feature], i)
	}

	// Feature verdicts: every decision method must agree.
	features := make([]string, 0, len(byFeature))
	for f := range byFeature {
		features = append(features, f)
	}
	sort.Strings(features)
	numeric := map[string]bool{}
	for _, n := range snap.Numeric {
		numeric[n.Feature] = true
	}
	for _, f := range features {
		decide := c.DecideCategorical
		switch {
		case numeric[f]:
			decide = c.DecideNumeric
		case f == multivariate.ReconstructionFeature:
			decide = []string{multivariate.MethodReconstruction}
		case f == multivariate.ClassifierFeature:
			decide = []string{multivariate.MethodClassifier}
		}
		drifted, insufficient, skipped := true, false, false
		for _, m := range decide {
			found := false
			for _, i := range byFeature[f] {
				if rows[i].Method != m {
					continue
				}
				found = true
				switch rows[i].Status {
				case StatusSkipped:
					skipped = true
					drifted = false
				case StatusInsufficient, StatusUndefined:
					insufficient = true
					drifted = false
				case StatusOK:
					drifted = false
				}
			}
			if !found {
				drifted = false
			}
		}
		if skipped {
			v.Skipped = append(v.Skipped, f)
			continue
		}
		if insufficient {
			v.Insufficient = append(v.Insufficient, f)
			continue
		}
		if !drifted {
			continue
		}
		v.Drifted = append(v.Drifted, f)
		past := hist[f]
		sustained := len(past) >= c.Consecutive-1
		for k := 0; k < c.Consecutive-1 && sustained; k++ {
			sustained = past[len(past)-1-k]
		}
		if sustained {
			v.Sustained = append(v.Sustained, f)
			for _, i := range byFeature[f] {
				if slices.Contains(decide, rows[i].Method) {
					rows[i].Sustained = true
				}
			}
		}
	}

	rows = append(rows, quality(snap, c, &v)...)
	v.Rows = rows
	return v
}

func fill(r Row, res stat.Result, err error) Row {
	switch {
	case errors.Is(err, stat.ErrInsufficient):
		r.Status, r.Value, r.PValue = StatusInsufficient, math.NaN(), math.NaN()
	case err != nil:
		r.Status, r.Value, r.PValue = StatusUndefined, math.NaN(), math.NaN()
	default:
		r.Value, r.PValue = res.Value, res.PValue
	}
	return r
}

// quality computes the data-quality rows.
func quality(snap *window.Snapshot, c Config, v *Verdict) []Row {
	var rows []Row
	share := func(part, whole int64) float64 {
		if whole == 0 {
			return math.NaN()
		}
		return float64(part) / float64(whole)
	}
	check := func(feature, method string, value, threshold float64, bad bool, samples, ref int64) *Row {
		status := StatusOK
		if math.IsNaN(value) {
			status = StatusInsufficient
			bad = false
		} else if bad {
			status = StatusDrifted
			v.QualityIssues = append(v.QualityIssues, feature+"/"+method)
		}
		rows = append(rows, Row{Feature: feature, Kind: KindDataQuality, Method: method, Value: value, PValue: math.NaN(), PValueAdjusted: math.NaN(),
			Threshold: threshold, Drifted: bad, Sustained: bad, Status: status, Samples: samples, ReferenceSamples: ref})
		return &rows[len(rows)-1]
	}
	missing := func(feature string, refN, curN int64) {
		if feature == window.ScoreFeature || feature == window.LabelFeature {
			return
		}
		cur := 1 - share(curN, snap.CurRows)
		ref := 1 - share(refN, snap.RefRows)
		check(feature, CheckMissingShare, cur, ref+c.MissingShareIncrease, cur-ref > c.MissingShareIncrease && snap.CurRows >= c.MinSamples, snap.CurRows, snap.RefRows)
	}
	for _, n := range snap.Numeric {
		missing(n.Feature, n.RefN, n.CurN)
		if n.CurN >= c.MinSamples {
			s := share(n.CurOutOfRange, n.CurN)
			check(n.Feature, CheckOutOfRangeShare, s, c.OutOfRangeShare, s > c.OutOfRangeShare, n.CurN, n.RefN)
		}
	}
	for i := range snap.Categorical {
		cf := &snap.Categorical[i]
		missing(cf.Feature, cf.RefN, cf.CurN)
		// More distinct values than max_categories: flagged when the
		// category methods were skipped, recorded (ok) when they compared
		// the folded categories.
		if cf.Folded {
			skip, note := highCardinality(cf, snap.MaxCategories)
			check(cf.Feature, CheckHighCardinality, float64(cf.Distinct), float64(snap.MaxCategories), skip, cf.CurN, cf.RefN).Note = note
		}
	}
	refDur := snap.Reference.End.Sub(snap.Reference.Start).Seconds()
	curDur := snap.Current.End.Sub(snap.Current.Start).Seconds()
	ratio := math.NaN()
	if snap.RefRows > 0 && refDur > 0 && curDur > 0 {
		ratio = (float64(snap.CurRows) / curDur) / (float64(snap.RefRows) / refDur)
	}
	bad := ratio < c.VolumeRatioMin || ratio > c.VolumeRatioMax
	threshold := c.VolumeRatioMin
	if ratio > c.VolumeRatioMax {
		threshold = c.VolumeRatioMax
	}
	check(ModelFeature, CheckVolumeRatio, ratio, threshold, bad, snap.CurRows, snap.RefRows)

	// Dead letters per reason, as a share of all the model's events in the
	// window (stored and rejected); a reason with none has no row.
	var rejected int64
	reasons := make([]string, 0, len(snap.DeadLetters))
	for r, n := range snap.DeadLetters {
		rejected += n
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	total := snap.CurRows + rejected
	for _, r := range reasons {
		s := share(snap.DeadLetters[r], total)
		if total < c.MinSamples {
			s = math.NaN()
		}
		check(r, CheckDeadLetterShare, s, c.DeadLetterShare, s > c.DeadLetterShare, snap.DeadLetters[r], total)
	}
	return rows
}

// kindOf is a feature's kind of drift: the prediction pseudo-features'
// is prediction drift.
func kindOf(f string) string {
	if f == window.ScoreFeature || f == window.LabelFeature {
		return KindPredictionDrift
	}
	return KindDrift
}

// methodRows computes each of methods on one feature with compute; a
// window with fewer than MinSamples rows on either side is insufficient
// for every method, which then is not computed.
func methodRows(feature string, methods []string, refN, curN int64, c Config, compute func(method string) (stat.Result, error)) []Row {
	rows := make([]Row, 0, len(methods))
	for _, m := range methods {
		r := Row{Feature: feature, Kind: kindOf(feature), Method: m, Threshold: c.Threshold(feature, m), Samples: curN, ReferenceSamples: refN}
		if curN < c.MinSamples || refN < c.MinSamples {
			r.Status, r.Value, r.PValue = StatusInsufficient, math.NaN(), math.NaN()
			rows = append(rows, r)
			continue
		}
		res, err := compute(m)
		rows = append(rows, fill(r, res, err))
	}
	return rows
}

// numericRows computes c's numeric methods on one feature.
func numericRows(n *window.Numeric, c Config) []Row {
	counts := stat.Counts{Reference: n.RefBins, Current: n.CurBins}
	ref := stat.Sample{Values: n.RefValues, Counts: n.RefCounts}
	cur := stat.Sample{Values: n.CurValues, Counts: n.CurCounts}
	// KS and Wasserstein read one walk of the pooled samples.
	pair := stat.NewPairSummarized(ref, n.RefSummary, cur)
	return methodRows(n.Feature, c.NumericMethods, n.RefN, n.CurN, c, func(m string) (stat.Result, error) {
		switch m {
		case stat.MethodPSI:
			return stat.PSI(counts)
		case stat.MethodJensenShannon:
			return stat.JensenShannon(counts)
		case stat.MethodHellinger:
			return stat.Hellinger(counts)
		case stat.MethodKS:
			if n.SampledRef || n.SampledCur {
				// A sample of a larger window (a slice's, whose share of
				// sample_cap is a few thousand rows): see KSAsymptotic.
				return pair.KS(false)
			}
			return pair.KS(true)
		case stat.MethodWasserstein:
			return pair.Wasserstein()
		case stat.MethodWassersteinNorm:
			return pair.WassersteinNorm()
		case stat.MethodAndersonDarling:
			return stat.AndersonDarling(ref, cur)
		case stat.MethodCramerVonMises:
			return stat.CramerVonMises(ref, cur)
		}
		return stat.Result{}, nil
	})
}

// minKeptShare is the least share of a window's rows its kept categories
// must hold for a folded feature to be compared: below it the comparison
// is mostly of one opaque bucket (OtherCategory) and of categories that
// happen to be the most frequent among near-unique values.
const minKeptShare = 0.5

// highCardinality says whether a categorical feature's methods are
// skipped, and why: it has more distinct values than MaxCategories and
// its MaxCategories most frequent hold less than minKeptShare of the rows
// of a window (a user id sent as a feature: every category seen once,
// chi-square and PSI on them mean nothing).
func highCardinality(cf *window.Categorical, maxCategories int) (skip bool, note string) {
	if !cf.Folded {
		return false, ""
	}
	var refOther, curOther int64
	if n := len(cf.Categories); n > 0 && cf.Categories[n-1] == window.OtherCategory {
		refOther, curOther = cf.RefCounts[n-1], cf.CurCounts[n-1]
	}
	kept := func(other, n int64) float64 {
		if n == 0 {
			return 1
		}
		return 1 - float64(other)/float64(n)
	}
	ref, cur := kept(refOther, cf.RefN), kept(curOther, cf.CurN)
	skip = ref < minKeptShare || cur < minKeptShare
	note = fmt.Sprintf("high_cardinality: %d distinct values in the two windows (%d in the current, %d in the reference), more than max_categories (%d); the %d most frequent hold %.1f%% of the current rows and %.1f%% of the reference's, the rest is one %s bucket",
		cf.Distinct, cf.CurDistinct, cf.RefDistinct, maxCategories, maxCategories, 100*cur, 100*ref, window.OtherCategory)
	if skip {
		note += fmt.Sprintf(", so the category methods are skipped (they compare near-unique values, below %.0f%% of a window's rows); raise max_categories or stop sending this feature", 100*minKeptShare)
	} else {
		note += ", which the methods compare as one category"
	}
	return skip, note
}

// categoricalRows computes c's categorical methods on one feature; those
// of a feature highCardinality skips are rows with status skipped.
func categoricalRows(cf *window.Categorical, c Config, maxCategories int) []Row {
	if skip, note := highCardinality(cf, maxCategories); skip {
		rows := make([]Row, 0, len(c.CategoricalMethods))
		for _, m := range c.CategoricalMethods {
			rows = append(rows, Row{Feature: cf.Feature, Kind: kindOf(cf.Feature), Method: m, Threshold: c.Threshold(cf.Feature, m), Samples: cf.CurN, ReferenceSamples: cf.RefN,
				Value: math.NaN(), PValue: math.NaN(), PValueAdjusted: math.NaN(), Status: StatusSkipped, Note: note})
		}
		return rows
	}
	counts := stat.Counts{Labels: cf.Categories, Reference: cf.RefCounts, Current: cf.CurCounts}
	return methodRows(cf.Feature, c.CategoricalMethods, cf.RefN, cf.CurN, c, func(m string) (stat.Result, error) {
		switch m {
		case stat.MethodPSI:
			return stat.PSI(counts)
		case stat.MethodJensenShannon:
			return stat.JensenShannon(counts)
		case stat.MethodHellinger:
			return stat.Hellinger(counts)
		case stat.MethodChiSquare:
			return stat.ChiSquare(counts)
		case stat.MethodLInfinity:
			return stat.LInfinity(counts)
		case stat.MethodUnseenShare:
			return stat.UnseenShare(counts)
		}
		return stat.Result{}, nil
	})
}

// multivariateRows computes the two multivariate methods on the windows'
// joint samples: the reconstruction error against the reference's band
// (Threshold the band's upper end, Note the band and components) and the
// domain classifier's cross-validated AUC against its threshold (Note and
// Leaned what it leaned on). They are decided here (a band has two ends;
// no p-value to adjust). Fewer than MinSamples joint rows in either window
// is insufficient, as for a feature; a window without a joint sample
// (aggregated without policy.multivariate.rows) undefined, with a note.
// The population's only: slices are not evaluated for it.
func multivariateRows(ref, cur *window.Joint, c Config) []Row {
	mc := c.Multivariate
	rec := Row{Feature: multivariate.ReconstructionFeature, Kind: KindDrift, Method: multivariate.MethodReconstruction,
		PValue: math.NaN(), PValueAdjusted: math.NaN(), Value: math.NaN(), Threshold: math.NaN()}
	cls := rec
	cls.Feature, cls.Method = multivariate.ClassifierFeature, multivariate.MethodClassifier
	if ref == nil || cur == nil {
		note := "no joint sample: the windows were aggregated without policy.multivariate.rows"
		rec.Status, rec.Note, cls.Status, cls.Note = StatusUndefined, note, StatusUndefined, note
		return []Row{rec, cls}
	}
	rec.Samples, rec.ReferenceSamples = int64(len(cur.Rows)), int64(len(ref.Rows))
	cls.Samples, cls.ReferenceSamples = rec.Samples, rec.ReferenceSamples
	if int64(len(ref.Rows)) < c.MinSamples || int64(len(cur.Rows)) < c.MinSamples {
		rec.Status, cls.Status = StatusInsufficient, StatusInsufficient
		return []Row{rec, cls}
	}
	if !slices.Equal(ref.Features, cur.Features) {
		note := fmt.Sprintf("the windows' joint samples have other numeric features (%d and %d)", len(ref.Features), len(cur.Features))
		rec.Status, rec.Note, cls.Status, cls.Note = StatusUndefined, note, StatusUndefined, note
		return []Row{rec, cls}
	}
	// Copies: the samples are the snapshot's (and the reference's, cached).
	r, k := copyRows(ref.Rows), copyRows(cur.Rows)
	multivariate.Impute(r, k)
	// The categorical features' one-hot columns (the reference's top
	// categories), matched by name: a cached reference may list them in
	// another order than the current window.
	enc := &multivariate.Encoder{} // no columns: policy.multivariate.categorical is off
	if c.Multivariate.Categorical {
		enc = multivariate.FitEncoder(ref.Categorical, ref.Categories, multivariate.TopCategories, multivariate.MinCategoryShare)
	}
	oneHot, origins := enc.Columns()
	names := append(slices.Clip(ref.Features), oneHot...)
	origins = append(slices.Clip(ref.Features), origins...)
	if len(oneHot) > 0 {
		appendColumns(r, enc.Encode(ref.Categorical, ref.Categories), len(oneHot))
		appendColumns(k, enc.Encode(cur.Categorical, cur.Categories), len(oneHot))
	}
	if len(names) == 0 {
		note := "no features: neither numeric features nor categories of at least 1 % of the reference's rows"
		rec.Status, rec.Note, cls.Status, cls.Note = StatusUndefined, note, StatusUndefined, note
		return []Row{rec, cls}
	}
	decided := func(row *Row, drifted bool) {
		row.Drifted, row.Status = drifted, StatusOK
		if drifted {
			row.Status = StatusDrifted
		}
	}
	if res, err := multivariate.Reconstruct(r, k, mc); err != nil {
		rec.Status, rec.Note = statusOf(err), "reconstruction: "+err.Error()
	} else {
		rec.Value, rec.Threshold = res.Error, res.Band.Upper
		rec.Note = fmt.Sprintf("band [%.4g, %.4g], %d of %d components", res.Band.Lower, res.Band.Upper, res.Components, len(names))
		decided(&rec, res.Drifted)
	}
	if res, err := multivariate.ClassifyColumns(r, k, names, origins, mc); err != nil {
		cls.Status, cls.Note = statusOf(err), "domain classifier: "+err.Error()
	} else {
		cls.Value, cls.Threshold, cls.Leaned = res.AUC, res.Threshold, res.Leaned
		cls.Note = multivariate.LeanedNote(res.Leaned)
		decided(&cls, res.Drifted)
	}
	return []Row{rec, cls}
}

func statusOf(err error) string {
	if errors.Is(err, multivariate.ErrInsufficient) {
		return StatusInsufficient
	}
	return StatusUndefined
}

// appendColumns appends cols[i] to rows[i] (rows are copies of their
// own), width zeros where cols has no row i (a joint sample read without
// categories).
func appendColumns(rows, cols [][]float64, width int) {
	for i := range rows {
		if i < len(cols) {
			rows[i] = append(rows[i], cols[i]...)
		} else {
			rows[i] = append(rows[i], make([]float64, width)...)
		}
	}
}

func copyRows(rows [][]float64) [][]float64 {
	out := make([][]float64, len(rows))
	for i, r := range rows {
		out[i] = slices.Clone(r)
	}
	return out
}
