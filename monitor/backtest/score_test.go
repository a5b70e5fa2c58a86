package backtest

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/driftwatch/driftwatch/internal/testcheck"
	"github.com/driftwatch/driftwatch/monitor"
	"github.com/driftwatch/driftwatch/monitor/perf"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/monitor/window"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func hour(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }

// drops makes hourly judged windows from hour `from` to `to`, the hours in
// dropped worse by 0.2, the others by 0.01.
func drops(from, to int, dropped ...int) []monitor.Drop {
	var out []monitor.Drop
	for h := from; h < to; h++ {
		d := monitor.Drop{Window: window.Span{Start: hour(h), End: hour(h + 1)}, Reference: perf.Metric{Value: 0.8}, Current: perf.Metric{Value: 0.79}, Worse: 0.01}
		if slices.Contains(dropped, h) {
			d.Current.Value, d.Worse, d.Dropped = 0.6, 0.2, true
		}
		out = append(out, d)
	}
	return out
}

func TestIncidentsAndScore(t *testing.T) {
	// Drops in hours 10–13 (incident 1), 20–21 (2) and 30 (3).
	incs := Incidents(drops(6, 40, 10, 11, 12, 13, 20, 21, 30))
	if len(incs) != 3 || !incs[0].Start.Equal(hour(10)) || !incs[0].End.Equal(hour(14)) || incs[0].Windows != 4 ||
		!incs[1].Start.Equal(hour(20)) || incs[1].Windows != 2 || incs[2].Windows != 1 {
		t.Fatalf("incidents %+v", incs)
	}
	// Alerts raised at the end of hours 12 (inside incident 1), 19 (its
	// performance window is [18,19), incident 2 starts 1 window later:
	// within 2), 25 (nothing in [24, 27)), 28 ([27,28) + 2 reaches [29,30),
	// incident 3 at 30 is 3 windows later: a false alarm with within 2).
	pr := PolicyReport{Alerts: []Alert{{At: hour(12)}, {At: hour(19)}, {At: hour(25)}, {At: hour(28)}}}
	score(&pr, incs, time.Hour, 2, 34.0/24)
	// Hand count: true alerts 2 (#1, #2), alerts 4 → precision 0.5;
	// detected 2 of 3 → recall 2/3; delays 12−10 = 2h, 19−20 = −1h →
	// median (even count: the mean of the two) 30m, max 2h.
	if pr.TrueAlerts != 2 || !slices.Equal(pr.Missed, []int{3}) || len(pr.Detections) != 2 {
		t.Fatalf("scored %+v", pr)
	}
	testcheck.Close(t, "precision", *pr.Precision, 0.5, 1e-12)
	testcheck.Close(t, "recall", *pr.Recall, 2.0/3, 1e-12)
	testcheck.Close(t, "alerts per day", pr.AlertsPerDay, 4/(34.0/24), 1e-12)
	if *pr.MedianDelay != 30*time.Minute || *pr.MaxDelay != 2*time.Hour || pr.Detections[1].Delay != -time.Hour {
		t.Fatalf("delays: median %s, max %s, detections %+v", *pr.MedianDelay, *pr.MaxDelay, pr.Detections)
	}
	if got := []int{pr.Alerts[0].Incident, pr.Alerts[1].Incident, pr.Alerts[2].Incident, pr.Alerts[3].Incident}; !slices.Equal(got, []int{1, 2, 0, 0}) {
		t.Fatalf("alert incidents %v", got)
	}
	// With within 3, the alert at 28 reaches [27, 31): incident 3.
	pr3 := PolicyReport{Alerts: []Alert{{At: hour(28)}}}
	score(&pr3, incs, time.Hour, 3, 1)
	if pr3.TrueAlerts != 1 || pr3.Alerts[0].Incident != 3 {
		t.Fatalf("within 3: %+v", pr3)
	}
	// No alerts: precision undefined, recall 0.
	var none PolicyReport
	score(&none, incs, time.Hour, 2, 1)
	if none.Precision != nil || none.Recall == nil || *none.Recall != 0 || len(none.Missed) != 3 {
		t.Fatalf("no alerts: %+v", none)
	}
}

func TestEnds(t *testing.T) {
	tests := []struct {
		name        string
		from, to    time.Time
		win, step   time.Duration
		first, last time.Time
		n           int
	}{
		{"tumbling hours", hour(0), hour(5), time.Hour, time.Hour, hour(1), hour(5), 5},
		{"from inside an hour", hour(0).Add(10 * time.Minute), hour(5), time.Hour, time.Hour, hour(2), hour(5), 4},
		{"sliding", hour(0), hour(2), time.Hour, 30 * time.Minute, hour(1), hour(2), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := Ends(tt.from, tt.to, tt.win, tt.step)
			if len(es) != tt.n || !es[0].Equal(tt.first) || !es[len(es)-1].Equal(tt.last) {
				t.Fatalf("ends %v", es)
			}
		})
	}
}

func TestParsePolicy(t *testing.T) {
	base := policy.Default()
	tests := []struct {
		name, src, wantErr string
		check              func(t *testing.T, p Policy)
	}{
		{name: "empty keeps the base", src: "", check: func(t *testing.T, p Policy) {
			if p.Config.Consecutive != base.Consecutive || p.Config.MinSamples != base.MinSamples || p.Segments != nil {
				t.Fatalf("%+v", p)
			}
		}},
		{name: "keys override", src: "consecutive: 3\nthresholds: {psi: 1.0}\nsegments: {keys: [region]}\n", check: func(t *testing.T, p Policy) {
			if p.Config.Consecutive != 3 || p.Config.Threshold("f0", "psi") != 1.0 || p.Segments == nil || p.Segments.MaxSegments != 10 || p.Segments.Keys[0] != "region" {
				t.Fatalf("%+v", p)
			}
		}},
		{name: "unknown key is named", src: "consecutiv: 3\n", wantErr: "field consecutiv not found"},
		{name: "bad value names the key", src: "min_samples: 0\n", wantErr: "policy.min_samples: must be at least 1"},
		{name: "bad method names the key", src: "thresholds: {psy: 1}\n", wantErr: `policy.thresholds: unknown method "psy"`},
		{name: "not YAML", src: "consecutive: [", wantErr: "strict.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicy("strict", "strict.yaml", []byte(tt.src), base)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrPolicy) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, p)
		})
	}
	// Decoding over the base left it alone.
	if _, err := ParsePolicy("x", "x.yaml", []byte("thresholds: {psi: 2}\n"), base); err != nil || len(base.Thresholds) != 0 {
		t.Fatalf("base changed: %v %v", base.Thresholds, err)
	}
}

// TestTableSaysWhenNothingWasJudged: a span whose performance windows all
// lie inside the reference (a model's first day) has no incident because
// nothing was compared, which the table must not call "no drop".
func TestTableSaysWhenNothingWasJudged(t *testing.T) {
	for _, c := range []struct {
		name            string
		judged, unjudge int
		want, not       string
	}{
		{"nothing judged", 0, 2, "incidents: unknown — none of the 2 performance windows could be judged", "no window dropped"},
		{"judged, no drop", 5, 0, "incidents: none (no window dropped", "unknown"},
	} {
		rep := Report{Model: "m", Performance: PerformanceSummary{Metric: "roc_auc", Window: "1h0m0s", MinLabelled: 200, Reference: "R", JudgedWindows: c.judged, UnjudgedWindows: c.unjudge}}
		var b strings.Builder
		if err := WriteTable(&b, rep); err != nil {
			t.Fatal(err)
		}
		if out := b.String(); !strings.Contains(out, c.want) || strings.Contains(out, c.not) {
			t.Errorf("%s: the table says\n%s\nwant %q and not %q", c.name, out, c.want, c.not)
		}
	}
}
