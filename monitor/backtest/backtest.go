// Package backtest replays a model's stored history with one or more
// proposed drift policies and scores each against what the labels later
// showed: `driftwatch backtest`. Every window is evaluated by the
// monitor's own code (monitor.Replay: the same aggregates from ClickHouse,
// verdicts, hysteresis, Benjamini–Hochberg, importance, segments and
// trigger gate) on a simulated clock, publishing nothing and writing no
// row. See docs/backtest.md.
//
// Scoring, in words (the docs give an example):
//
//   - An alert is a run of consecutive windows with sustained drift (the
//     population's or a slice's); it is raised at the end of the run's
//     first window.
//   - An incident is a run of consecutive performance windows (the
//     monitor's performance.window) whose primary metric is worse than the
//     reference's by more than performance.drop, on at least
//     min_labelled labelled rows: the monitor's own performance drop
//     policy, on every label stored now.
//   - An alert is true when an incident overlaps its performance window
//     (the one holding the alert's time) or the Within windows after it;
//     it detects that incident (the earliest, when several). Precision is
//     true alerts over alerts, recall detected incidents over incidents,
//     and the detection delay of an incident the time from its start to
//     the first alert that detected it (negative: the alert came first).
package backtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.yaml.in/yaml/v3"

	"github.com/driftwatch/driftwatch/monitor"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/window"
	"github.com/driftwatch/driftwatch/schemas"
)

// Policy is one proposed policy: the keys of the monitor's policy:
// section, and optionally the slices evaluated (segments:).
type Policy struct {
	Name     string
	Config   policy.Config
	Segments *monitor.SegmentsConfig
}

// policyFile is what a policy file holds.
type policyFile struct {
	policy.Config `yaml:",inline"`
	Segments      *monitor.SegmentsConfig `yaml:"segments"`
}

// ErrPolicy marks a policy file that cannot be used: unreadable, bad YAML,
// an unknown key or an invalid value (the error names the key).
var ErrPolicy = errors.New("bad policy")

// LoadPolicy reads a policy file: the same YAML as the monitor's policy:
// section (keys left out keep the defaults of base), and an optional
// segments: section (keys, max_segments). Its name is the file's base name
// without extension.
func LoadPolicy(path string, base policy.Config) (Policy, error) {
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	b, err := os.ReadFile(path)
	if err != nil {
		return Policy{}, fmt.Errorf("%w: read policy file: %w", ErrPolicy, err)
	}
	return ParsePolicy(name, path, b, base)
}

// ParsePolicy parses the policy file src (named file in errors).
func ParsePolicy(name, file string, src []byte, base policy.Config) (Policy, error) {
	pf := policyFile{Config: clonePolicy(base)}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&pf); err != nil && !errors.Is(err, io.EOF) {
		return Policy{}, fmt.Errorf("%w %s: %w (the keys of the monitor's policy: section, and segments:)", ErrPolicy, file, err)
	}
	if err := pf.Config.Validate("policy"); err != nil {
		return Policy{}, fmt.Errorf("%w %s: %w", ErrPolicy, file, err)
	}
	if s := pf.Segments; s != nil {
		if s.MaxSegments == 0 {
			s.MaxSegments = monitor.DefaultSettings().Segments.MaxSegments
		}
		if s.MaxSegments < 1 || s.MaxSegments > 1000 {
			return Policy{}, fmt.Errorf("%w %s: segments.max_segments: must be from 1 to 1000, got %d", ErrPolicy, file, s.MaxSegments)
		}
	}
	return Policy{Name: name, Config: pf.Config, Segments: pf.Segments}, nil
}

// clonePolicy copies c's maps and slices, so that decoding over it leaves
// c alone.
func clonePolicy(c policy.Config) policy.Config {
	c.NumericMethods = slices.Clone(c.NumericMethods)
	c.CategoricalMethods = slices.Clone(c.CategoricalMethods)
	c.DecideNumeric = slices.Clone(c.DecideNumeric)
	c.DecideCategorical = slices.Clone(c.DecideCategorical)
	th := map[string]float64{}
	for k, v := range c.Thresholds {
		th[k] = v
	}
	c.Thresholds = th
	fs := map[string]map[string]float64{}
	for f, ms := range c.Features {
		fs[f] = map[string]float64{}
		for k, v := range ms {
			fs[f][k] = v
		}
	}
	c.Features = fs
	return c
}

// Options configure a backtest.
type Options struct {
	// Settings are the monitor's (window, step, reference, triggers,
	// performance, segments); each policy replaces Policy, and Segments
	// when it has its own.
	Settings monitor.Settings
	Conn     driver.Conn
	Model    string
	// From and To bound the replay: windows ending in (From, To] that
	// start at or after From.
	From, To time.Time
	Policies []Policy
	// Within is how many performance windows after an alert's own an
	// incident may start and still count as what it warned of.
	Within int
	// Progress receives a line every ProgressEvery (stderr); nil is quiet.
	Progress      io.Writer
	ProgressEvery time.Duration
	// Now is the wall clock for the replay's timing figures.
	Now func() time.Time
}

// Sentinel errors for what a caller may act on.
var (
	// ErrUnknownModel: no inference of the model is stored.
	ErrUnknownModel = errors.New("unknown model")
	// ErrNoData: the model has no inference in the range.
	ErrNoData = errors.New("no data in range")
)

// Report is a backtest's outcome.
type Report struct {
	Model string    `json:"model"`
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	// Window and Step are the drift windows replayed; Windows how many.
	Window  string  `json:"window"`
	Step    string  `json:"step"`
	Windows int     `json:"windows"`
	Days    float64 `json:"days"`
	// Performance is how the incidents were found.
	Performance PerformanceSummary `json:"performance"`
	Incidents   []Incident         `json:"incidents"`
	Policies    []PolicyReport     `json:"policies"`
}

// PerformanceSummary says what the labels showed and how it was judged.
type PerformanceSummary struct {
	Metric          string  `json:"metric"`
	Window          string  `json:"window"`
	Drop            float64 `json:"drop"`
	MinLabelled     int64   `json:"min_labelled"`
	Within          int     `json:"within"`
	Reference       string  `json:"reference"`
	ReferenceValue  float64 `json:"reference_value"`
	JudgedWindows   int     `json:"judged_windows"`
	UnjudgedWindows int     `json:"unjudged_windows"`
}

// Incident is a run of performance windows with a drop.
type Incident struct {
	ID      int       `json:"id"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Windows int       `json:"windows"`
	// Worst is the primary metric's value in the worst window, and
	// WorstDrop how much worse than the reference it was.
	Worst     float64 `json:"worst"`
	WorstDrop float64 `json:"worst_drop"`
}

// Alert is a run of windows with sustained drift under one policy.
type Alert struct {
	// At is the end of the run's first window (when it would have paged),
	// Until the end of its last.
	At      time.Time `json:"at"`
	Until   time.Time `json:"until"`
	Windows int       `json:"windows"`
	// Features are those sustained at At (slices as "region=eu/f0").
	Features []string           `json:"features"`
	Evidence []schemas.Evidence `json:"evidence"`
	// Incident is the ID of the incident it warned of, 0 for a false
	// alarm.
	Incident int `json:"incident"`
}

// Trigger is a retrain trigger the policy would have passed to the gate.
type Trigger struct {
	At       time.Time             `json:"at"`
	Reason   schemas.TriggerReason `json:"reason"`
	Outcome  monitor.Outcome       `json:"outcome"`
	Features []string              `json:"features"`
	// Evidence is the trigger's, as the trainer would have received it.
	Evidence []schemas.Evidence `json:"evidence"`
}

// Detection is an incident a policy detected.
type Detection struct {
	Incident int           `json:"incident"`
	At       time.Time     `json:"at"`
	Delay    time.Duration `json:"-"`
	DelayS   float64       `json:"delay_seconds"`
}

// PolicyReport is one policy's outcome.
type PolicyReport struct {
	Name   string  `json:"name"`
	Alerts []Alert `json:"alerts"`
	// AlertsPerDay is len(Alerts) over the replayed days.
	AlertsPerDay float64 `json:"alerts_per_day"`
	// Triggers are those published (Outcome published) and those the
	// gate held back (cooldown, daily_max).
	Triggers   []Trigger   `json:"triggers"`
	Published  int         `json:"published"`
	TrueAlerts int         `json:"true_alerts"`
	Detections []Detection `json:"detections"`
	Missed     []int       `json:"missed"`
	// Precision and Recall are null in JSON when undefined (no alerts, no
	// incidents).
	Precision *float64 `json:"precision"`
	Recall    *float64 `json:"recall"`
	// MedianDelay and MaxDelay are over the detected incidents.
	MedianDelay *time.Duration `json:"-"`
	MaxDelay    *time.Duration `json:"-"`
	// MedianDelayS and MaxDelayS are the same in seconds, for JSON.
	MedianDelayS *float64 `json:"median_delay_seconds"`
	MaxDelayS    *float64 `json:"max_delay_seconds"`
	// Evaluated and Skipped count windows (skipped: overlapping the
	// reference, too few rows in a growing one).
	Evaluated int `json:"evaluated"`
	Skipped   int `json:"skipped"`
	// Seconds is the replay's wall time, WindowsPerSecond its speed.
	Seconds          float64 `json:"seconds"`
	WindowsPerSecond float64 `json:"windows_per_second"`
}

// Ends returns the window ends replayed over [from, to]: multiples of step
// (as the monitor's rounds end), whose window starts at or after from, up
// to to.
func Ends(from, to time.Time, win, step time.Duration) []time.Time {
	first := from.Add(win).Truncate(step)
	if first.Add(-win).Before(from) {
		first = first.Add(step)
	}
	var out []time.Time
	for e := first; !e.After(to); e = e.Add(step) {
		out = append(out, e)
	}
	return out
}

// Run replays every policy and scores it.
func Run(ctx context.Context, o Options) (Report, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 5 * time.Second
	}
	if len(o.Policies) == 0 {
		return Report{}, errors.New("backtest: no policy")
	}
	if !o.From.Before(o.To) {
		return Report{}, fmt.Errorf("backtest: from (%s) must be before to (%s)", o.From.Format(time.RFC3339), o.To.Format(time.RFC3339))
	}
	s := o.Settings
	ends := Ends(o.From, o.To, s.Window, s.Step)
	rep := Report{Model: o.Model, From: o.From.UTC(), To: o.To.UTC(), Window: s.Window.String(), Step: s.Step.String(), Windows: len(ends),
		Days: o.To.Sub(o.From).Hours() / 24}
	var perfHist monitor.PerformanceHistory
	for i, p := range o.Policies {
		set := s
		set.Policy = p.Config
		if p.Segments != nil {
			set.Segments = *p.Segments
		}
		if mc, ok := set.Models[o.Model]; ok && mc.Policy != nil {
			// The model's own policy would win over the one replayed.
			models := make(map[string]monitor.ModelConfig, len(set.Models))
			for id, c := range set.Models {
				models[id] = c
			}
			pc := p.Config
			mc.Policy = &pc
			models[o.Model] = mc
			set.Models = models
		}
		r, err := monitor.NewReplay(monitor.ReplayOptions{Settings: set, Conn: o.Conn})
		if err != nil {
			return rep, fmt.Errorf("backtest policy %s: %w", p.Name, err)
		}
		if i == 0 {
			if err := checkData(ctx, r.Store(), o.Model, o.From, o.To); err != nil {
				return rep, err
			}
			if len(ends) == 0 {
				return rep, fmt.Errorf("backtest: no window of %s (step %s) fits in [%s, %s]", s.Window, s.Step, o.From.Format(time.RFC3339), o.To.Format(time.RFC3339))
			}
			if perfHist, err = r.PerformanceHistory(ctx, o.Model, window.Span{Start: o.From, End: o.To}); err != nil {
				return rep, fmt.Errorf("backtest: what the labels showed: %w", err)
			}
			rep.Incidents = Incidents(perfHist.Windows)
			rep.Performance = PerformanceSummary{Metric: perfHist.Primary, Window: s.Performance.Window.String(), Drop: s.Performance.Drop,
				MinLabelled: s.Performance.MinLabelled, Within: o.Within, Reference: perfHist.Reference.String(), ReferenceValue: perfHist.ReferenceMetric.Value,
				JudgedWindows: len(perfHist.Windows), UnjudgedWindows: perfHist.Unjudged}
		}
		pr, err := replay(ctx, r, o, p.Name, ends)
		if err != nil {
			return rep, err
		}
		score(&pr, rep.Incidents, s.Performance.Window, o.Within, rep.Days)
		rep.Policies = append(rep.Policies, pr)
	}
	return rep, nil
}

func checkData(ctx context.Context, st *monitor.Store, model string, from, to time.Time) error {
	all, err := st.InferenceCount(ctx, model, window.Span{Start: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		return fmt.Errorf("backtest: %w", err)
	}
	if all == 0 {
		return fmt.Errorf("backtest: %w %s: no inference of it is stored", ErrUnknownModel, model)
	}
	in, err := st.InferenceCount(ctx, model, window.Span{Start: from, End: to})
	if err != nil {
		return fmt.Errorf("backtest: %w", err)
	}
	if in == 0 {
		first, _ := st.FirstInference(ctx, model)
		return fmt.Errorf("backtest: %w: model %s has no inference in [%s, %s) (its first is at %s)", ErrNoData, model,
			from.Format(time.RFC3339), to.Format(time.RFC3339), first.UTC().Format(time.RFC3339))
	}
	return nil
}

// replay evaluates ends with r and collects the policy's alerts and
// triggers.
func replay(ctx context.Context, r *monitor.Replay, o Options, name string, ends []time.Time) (PolicyReport, error) {
	pr := PolicyReport{Name: name}
	start := o.Now()
	last := start
	var open *Alert
	for i, e := range ends {
		res, err := r.Evaluate(ctx, o.Model, e)
		if err != nil {
			return pr, fmt.Errorf("backtest policy %s: window ending %s: %w", name, e.Format(time.RFC3339), err)
		}
		if res.Skipped != "" {
			pr.Skipped++
		} else {
			pr.Evaluated++
		}
		feats, ev := sustained(res)
		switch {
		case len(feats) > 0 && open != nil:
			open.Until, open.Windows = e, open.Windows+1
		case len(feats) > 0:
			open = &Alert{At: e, Until: e, Windows: 1, Features: feats, Evidence: ev}
		case open != nil:
			pr.Alerts = append(pr.Alerts, *open)
			open = nil
		}
		for _, d := range res.Decisions {
			t := Trigger{At: e, Reason: d.Trigger.Reason, Outcome: d.Outcome, Evidence: d.Trigger.Evidence}
			for _, x := range d.Trigger.Evidence {
				if !slices.Contains(t.Features, x.Feature) {
					t.Features = append(t.Features, x.Feature)
				}
			}
			if d.Outcome == monitor.OutcomePublished {
				pr.Published++
			}
			pr.Triggers = append(pr.Triggers, t)
		}
		if now := o.Now(); o.Progress != nil && (now.Sub(last) >= o.ProgressEvery || i == len(ends)-1) {
			last = now
			el := now.Sub(start).Seconds()
			fmt.Fprintf(o.Progress, "backtest: policy %s: %d/%d windows (up to %s), %.1f windows/s\n", name, i+1, len(ends), e.Format(time.RFC3339), float64(i+1)/max(el, 1e-9))
		}
	}
	if open != nil {
		pr.Alerts = append(pr.Alerts, *open)
	}
	pr.Seconds = o.Now().Sub(start).Seconds()
	if pr.Seconds > 0 {
		pr.WindowsPerSecond = float64(len(ends)) / pr.Seconds
	}
	return pr, nil
}

// sustained lists the features with sustained drift in res (the
// population's, then each slice's as "slice/feature"), and the evidence:
// their decision methods' drifted rows.
func sustained(res monitor.Result) ([]string, []schemas.Evidence) {
	var feats []string
	var ev []schemas.Evidence
	add := func(prefix string, v policy.Verdict) {
		for _, f := range v.Sustained {
			feats = append(feats, prefix+f)
			for _, r := range v.Rows {
				if r.Feature != f || !r.Drifted || r.Kind == policy.KindDataQuality {
					continue
				}
				e := schemas.Evidence{Check: r.Kind, Feature: prefix + f, Method: r.Method, Value: r.Value, Threshold: r.Threshold, Samples: r.Samples}
				if !math.IsNaN(r.PValueAdjusted) {
					p := r.PValueAdjusted
					e.PValue = &p
				}
				ev = append(ev, e)
			}
		}
	}
	add("", res.Verdict)
	for _, s := range res.Segments {
		add(s.Name+"/", s.Verdict)
	}
	return feats, ev
}

// Incidents groups the dropped windows of ds (oldest first) into runs of
// adjacent windows, numbered from 1.
func Incidents(ds []monitor.Drop) []Incident {
	var out []Incident
	var cur *Incident
	for _, d := range ds {
		if !d.Dropped {
			cur = nil
			continue
		}
		if cur == nil || !cur.End.Equal(d.Window.Start) {
			out = append(out, Incident{ID: len(out) + 1, Start: d.Window.Start, End: d.Window.End, Windows: 1, Worst: d.Current.Value, WorstDrop: d.Worse})
			cur = &out[len(out)-1]
			continue
		}
		cur.End, cur.Windows = d.Window.End, cur.Windows+1
		if d.Worse > cur.WorstDrop {
			cur.Worst, cur.WorstDrop = d.Current.Value, d.Worse
		}
	}
	return out
}

// score matches pr's alerts with the incidents (performance windows of
// length pw, an alert reaching within windows past its own) and fills in
// the figures.
func score(pr *PolicyReport, incidents []Incident, pw time.Duration, within int, days float64) {
	if days > 0 {
		pr.AlertsPerDay = float64(len(pr.Alerts)) / days
	}
	first := map[int]Detection{}
	for i := range pr.Alerts {
		a := &pr.Alerts[i]
		// The performance window holding the alert's time: the last
		// instant of the window that raised it.
		ws := a.At.Add(-time.Nanosecond).Truncate(pw)
		reachEnd := ws.Add(time.Duration(within+1) * pw)
		for _, in := range incidents {
			if in.End.After(ws) && in.Start.Before(reachEnd) {
				a.Incident = in.ID
				break
			}
		}
		if a.Incident == 0 {
			continue
		}
		pr.TrueAlerts++
		if _, seen := first[a.Incident]; !seen {
			in := incidents[a.Incident-1]
			d := a.At.Sub(in.Start)
			first[a.Incident] = Detection{Incident: a.Incident, At: a.At, Delay: d, DelayS: d.Seconds()}
		}
	}
	var delays []time.Duration
	for _, in := range incidents {
		d, ok := first[in.ID]
		if !ok {
			pr.Missed = append(pr.Missed, in.ID)
			continue
		}
		pr.Detections = append(pr.Detections, d)
		delays = append(delays, d.Delay)
	}
	if len(pr.Alerts) > 0 {
		p := float64(pr.TrueAlerts) / float64(len(pr.Alerts))
		pr.Precision = &p
	}
	if len(incidents) > 0 {
		r := float64(len(pr.Detections)) / float64(len(incidents))
		pr.Recall = &r
	}
	if len(delays) > 0 {
		sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
		med := delays[len(delays)/2]
		if len(delays)%2 == 0 {
			med = (delays[len(delays)/2-1] + delays[len(delays)/2]) / 2
		}
		mx := delays[len(delays)-1]
		pr.MedianDelay, pr.MaxDelay = &med, &mx
		ms, xs := med.Seconds(), mx.Seconds()
		pr.MedianDelayS, pr.MaxDelayS = &ms, &xs
	}
}
