package demo

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/chsql"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/monitor/policy"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

// Config is driftwatch demo's configuration. The defaults are make run's
// addresses.
type Config struct {
	config.Logging    `yaml:",inline"`
	config.APIClient  `yaml:",inline"`
	config.Kafka      `yaml:",inline"`
	config.ClickHouse `yaml:",inline"`
	ServeURL          string        `yaml:"serve_url" env:"DRIFTWATCH_SERVE_URL" flag:"serve-url" help:"serve's base URL: the demo's traffic and labels go through its predict and outcomes endpoints"`
	MonitorURL        string        `yaml:"monitor_url" env:"DRIFTWATCH_MONITOR_URL" flag:"monitor-url" help:"the monitor's base URL: drift results, triggers, versions and performance are read from its API"`
	AlertmanagerURL   string        `yaml:"alertmanager_url" env:"DRIFTWATCH_ALERTMANAGER_URL" flag:"alertmanager-url" help:"Alertmanager's base URL: the alert is read from its API v2"`
	Model             string        `yaml:"model" flag:"model" help:"the served model the demo sends traffic to"`
	Rate              int           `yaml:"rate" flag:"rate" help:"rows predicted (and labelled) per second"`
	Baseline          time.Duration `yaml:"baseline" flag:"baseline" help:"how long the traffic runs unchanged before the drift and the concept change"`
	DriftFeature      string        `yaml:"drift_feature" flag:"drift-feature" help:"numeric feature whose mean shifts (default: the model's first numeric feature)"`
	Shift             float64       `yaml:"shift" flag:"shift" help:"the drift: the feature's mean moves by this many standard deviations"`
	Metric            string        `yaml:"metric" flag:"metric" help:"the live performance metric watched for the recovery"`
	Recovered         float64       `yaml:"recovered" flag:"recovered" help:"the metric's value on a window after the reload that counts as recovered"`
	StepTimeout       time.Duration `yaml:"step_timeout" flag:"step-timeout" help:"longest the demo waits for each step"`
	Poll              time.Duration `yaml:"poll" flag:"poll" help:"how often each step's evidence is checked"`
	Progress          time.Duration `yaml:"progress" flag:"progress" help:"how often a progress line is printed while waiting"`
	Bootstrap         bool          `yaml:"bootstrap" flag:"bootstrap" help:"when serve does not serve the model yet, write labelled history of the demo's world to Kafka and ask the monitor for a manual trigger, so that the trainer registers a first champion"`
	BootstrapRows     int           `yaml:"bootstrap_rows" flag:"bootstrap-rows" help:"labelled rows the bootstrap writes"`
	BootstrapSpan     time.Duration `yaml:"bootstrap_span" flag:"bootstrap-span" help:"the bootstrap's rows are backdated evenly over this span before the start"`
	Features          int           `yaml:"features" flag:"features" help:"numeric features (f0, f1, …) of the model the bootstrap creates"`
	Seed              int64         `yaml:"seed" flag:"seed" help:"seed of the demo's traffic"`
}

// DefaultConfig is the demo against make run.
func DefaultConfig() *Config {
	return &Config{
		Logging:         config.DefaultLogging(),
		Kafka:           config.DefaultKafka(),
		ClickHouse:      config.DefaultClickHouse(),
		Bootstrap:       true,
		BootstrapRows:   3000,
		BootstrapSpan:   time.Minute,
		Features:        5,
		ServeURL:        "http://127.0.0.1:9104",
		MonitorURL:      "http://127.0.0.1:9102",
		AlertmanagerURL: "http://127.0.0.1:9193",
		Model:           "model-0",
		Rate:            50,
		Baseline:        time.Minute,
		Shift:           3,
		Metric:          "roc_auc",
		Recovered:       0.7,
		StepTimeout:     3 * time.Minute,
		Poll:            2 * time.Second,
		Progress:        15 * time.Second,
		Seed:            1,
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	for _, u := range []struct{ name, v string }{{"serve_url", c.ServeURL}, {"monitor_url", c.MonitorURL}, {"alertmanager_url", c.AlertmanagerURL}} {
		p, err := url.Parse(u.v)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			errs = append(errs, fmt.Errorf("%s: want http(s)://host:port, got %q", u.name, u.v))
		} else if p.User != nil {
			errs = append(errs, fmt.Errorf("%s: must not hold a user or password (give the token with -api-token-file or DRIFTWATCH_API_TOKEN)", u.name))
		}
	}
	if c.Model == "" {
		errs = append(errs, errors.New("model: required"))
	}
	if c.Rate < 1 || c.Rate > 10000 {
		errs = append(errs, fmt.Errorf("rate: want 1 to 10000 rows a second, got %d", c.Rate))
	}
	if c.BootstrapRows < 1200 {
		errs = append(errs, fmt.Errorf("bootstrap_rows: the trainer needs at least 1200 labelled rows (1000 to train, 200 to evaluate), got %d", c.BootstrapRows))
	}
	if c.BootstrapSpan < time.Minute {
		errs = append(errs, fmt.Errorf("bootstrap_span: want at least 1m, got %s", c.BootstrapSpan))
	}
	if c.Features < 1 || c.Features > 100 {
		errs = append(errs, fmt.Errorf("features: want 1 to 100, got %d", c.Features))
	}
	if !(c.Shift > 0) {
		errs = append(errs, fmt.Errorf("shift: must be positive, got %v", c.Shift))
	}
	if !(c.Recovered > 0 && c.Recovered <= 1) && c.Metric != "rmse" {
		errs = append(errs, fmt.Errorf("recovered: want (0, 1], got %v", c.Recovered))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"baseline", c.Baseline}, {"step_timeout", c.StepTimeout}, {"poll", c.Poll}, {"progress", c.Progress}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive, got %s", d.name, d.v))
		}
	}
	return errors.Join(append(errs, c.Logging.Validate(), c.APIClient.Validate(), c.Kafka.Validate(), c.ClickHouse.Validate())...)
}

// Commands returns driftwatch demo.
func Commands() []command.Command {
	return []command.Command{{
		Name:    "demo",
		Summary: "run the whole loop against a running stack (make run) and print its timeline",
		Usage: `driftwatch demo sends traffic through serve's predict endpoint and its
labels through serve's outcomes endpoint, then shifts one feature (a drift)
and flips the labelling rule (a concept change), and follows the loop:
the monitor flags the drift, the alert reaches Alertmanager, a retrain
trigger is recorded, the trainer promotes a new champion, serve answers
with it, and the live performance recovers. It prints each step with its
time since the start and its evidence, a progress line while waiting, and
exits 1 naming the first step that did not happen within -step-timeout.
make demo runs it against a stack with short windows (docs/demo.md).`,
		Config: func() config.Validator { return DefaultConfig() },
		Run: func(ctx context.Context, c config.Validator, env command.Env) error {
			tl := NewTimeline(env.Stdout, c.(*Config).Poll, c.(*Config).Progress)
			return Run(ctx, c.(*Config), tl)
		},
	}}
}

// Run runs the demo and returns a *StepError naming the step that did not
// happen.
func Run(ctx context.Context, cfg *Config, tl *Timeline) error {
	tok, err := cfg.APIClient.Token()
	if err != nil {
		return err
	}
	c := &client{http: &http.Client{Timeout: 10 * time.Second}, token: tok,
		serve: strings.TrimRight(cfg.ServeURL, "/"), monitor: strings.TrimRight(cfg.MonitorURL, "/"),
		alertmanager: strings.TrimRight(cfg.AlertmanagerURL, "/")}
	tl.Start()
	fmt.Fprintf(tl.W, "driftwatch demo: model %s, serve %s, monitor %s, Alertmanager %s\n", cfg.Model, c.serve, c.monitor, c.alertmanager)
	step := cfg.StepTimeout

	// 1. serve serves a champion of the model (after a bootstrap on a
	// fresh stack).
	var info struct {
		numeric, categorical []string
		version              string
	}
	find := func(ctx context.Context) (bool, string, error) {
		ms, err := c.models(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		for _, m := range ms {
			if m.ModelID == cfg.Model {
				if m.Task != "binary_classification" {
					return false, "", fmt.Errorf("model %s is a %s model; the demo needs a binary classifier", m.ModelID, m.Task)
				}
				info.numeric, info.categorical, info.version = m.Numeric, m.Categorical, m.Version
				return true, fmt.Sprintf("%s version %s, %d numeric and %d categorical features", m.ModelID, m.Version, len(m.Numeric), len(m.Categorical)), nil
			}
		}
		return false, fmt.Sprintf("serve has %d models, not %s", len(ms), cfg.Model), nil
	}
	served, _, err := find(ctx)
	if err != nil {
		return &StepError{Step: "serve serves the champion", Err: err}
	}
	var w *world
	if !served && cfg.Bootstrap {
		w = newWorld(defaultFeatures(cfg.Features), nil, "", cfg.Shift, uint64(cfg.Seed))
		opts, err := kafkaio.FromConfig(cfg.Kafka, "driftwatch-demo", nil)
		if err != nil {
			return err
		}
		if err := produceBootstrap(ctx, opts, cfg.Model, w, cfg.BootstrapRows, cfg.BootstrapSpan, tl.Now()); err != nil {
			return &StepError{Step: "bootstrap", Err: err}
		}
		tl.Note("bootstrap: %s does not serve %s yet; wrote %d labelled rows of the last %s to Kafka", c.serve, cfg.Model, cfg.BootstrapRows, cfg.BootstrapSpan)
		// The trainer reads what ingest has joined: the trigger waits
		// until every bootstrap row is labelled in ClickHouse.
		conn, err := chclient.Open(ctx, chclient.FromConfig(cfg.ClickHouse), false)
		if err != nil {
			return &StepError{Step: "bootstrap", Err: err}
		}
		defer conn.Close()
		if _, err := tl.Wait(ctx, "bootstrap rows labelled in ClickHouse", step, func(ctx context.Context) (bool, string, error) {
			var n uint64
			q := "SELECT count() FROM inferences_labeled WHERE model_id = " + chsql.String(cfg.Model) + " AND model_version = 'bootstrap'"
			if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
				return false, err.Error(), nil
			}
			return n >= uint64(cfg.BootstrapRows), fmt.Sprintf("%d of %d rows", n, cfg.BootstrapRows), nil
		}); err != nil {
			return err
		}
		id, err := c.manualTrigger(ctx, cfg.Model, "driftwatch demo: first champion")
		if err != nil {
			return &StepError{Step: "bootstrap", Err: err}
		}
		tl.Note("bootstrap: manual retrain trigger %s", id)
	}
	if _, err := tl.Wait(ctx, "serve serves the champion", step, find); err != nil {
		return err
	}
	drift := cfg.DriftFeature
	if drift == "" && len(info.numeric) > 0 {
		drift = info.numeric[0]
	}
	if !slices.Contains(info.numeric, drift) {
		return &StepError{Step: "serve serves the champion", Err: fmt.Errorf("drift_feature %q is not a numeric feature of %s (%v)", drift, cfg.Model, info.numeric)}
	}
	if w == nil {
		w = newWorld(info.numeric, info.categorical, drift, cfg.Shift, uint64(cfg.Seed))
	}
	w.setDriftFeature(drift)
	oldChampion, err := c.champion(ctx, cfg.Model)
	if err != nil || oldChampion == "" {
		oldChampion = info.version
	}

	// 2. Traffic and labels, unchanged for the baseline.
	var st trafficStats
	tctx, stop := context.WithCancel(ctx)
	defer stop()
	go send(tctx, c, cfg.Model, w, cfg.Rate, &st)
	baselineEnd := tl.Now().Add(cfg.Baseline)
	if _, err := tl.Wait(ctx, "traffic through predict, labels through outcomes", cfg.Baseline+step, func(ctx context.Context) (bool, string, error) {
		ev := fmt.Sprintf("%d rows predicted by %s, %d labels accepted, %d failed requests", st.predicted.Load(), st.lastVersion(), st.labelled.Load(), st.failed.Load())
		if e := st.lastErr.Load(); e != nil {
			ev += " (last: " + *e + ")"
		}
		return !tl.Now().Before(baselineEnd) && st.labelled.Load() > 0, ev, nil
	}); err != nil {
		return err
	}

	// 3. The drift and the concept change.
	changedAt := tl.Now()
	w.changed.Store(true)
	tl.Note("injected: %s shifted by %v standard deviations (drift) and the labelling rule flipped (concept change)", drift, cfg.Shift)

	// 4. The monitor flags the drift.
	if _, err := tl.Wait(ctx, "the monitor flags the drift", step, func(ctx context.Context) (bool, string, error) {
		rs, err := c.results(ctx, cfg.Model)
		if err != nil {
			return false, err.Error(), nil
		}
		seen := "no result yet"
		for _, r := range rs {
			if r.Feature != drift || r.Kind != policy.KindDrift {
				continue // a data-quality check (out_of_range_share) may flag it too
			}
			seen = fmt.Sprintf("%s %s drifted=%v on the window ending %s", r.Feature, r.Method, r.Drifted, r.WindowEnd.Format(time.TimeOnly))
			if r.Drifted && r.WindowEnd.After(changedAt) {
				v := 0.0
				if r.Value != nil {
					v = *r.Value
				}
				// A test's threshold is on its p-value (adjusted, when the
				// noise control adjusted it), PSI's on the value itself.
				ev := fmt.Sprintf("%s %s = %.3g", r.Feature, r.Method, v)
				if p := r.PValueAdjusted; p != nil {
					ev += fmt.Sprintf(", adjusted p = %.3g (threshold %.3g)", *p, r.Threshold)
				} else if p := r.PValue; p != nil {
					ev += fmt.Sprintf(", p = %.3g (threshold %.3g)", *p, r.Threshold)
				} else {
					ev += fmt.Sprintf(" (threshold %.3g)", r.Threshold)
				}
				return true, fmt.Sprintf("%s; %d samples, window ending %s", ev, r.Samples, r.WindowEnd.Format(time.TimeOnly)), nil
			}
		}
		return false, seen, nil
	}); err != nil {
		return err
	}

	// 5. The alert reaches Alertmanager.
	if _, err := tl.Wait(ctx, "the alert reaches Alertmanager", step, func(ctx context.Context) (bool, string, error) {
		as, err := c.alerts(ctx, cfg.Model)
		if err != nil {
			return false, err.Error(), nil
		}
		var names []string
		for _, a := range as {
			names = append(names, a.Labels["alertname"])
			// Only an alert that began after the change shows the loop; one
			// already firing (a noisy first window) is not its evidence.
			if n := a.Labels["alertname"]; ((n == "DriftwatchFeatureDrift" && a.Labels["feature"] == drift) || n == "DriftwatchPerformanceDrop") && !a.StartsAt.Before(changedAt.Add(-time.Second)) {
				return true, fmt.Sprintf("%s{model=%s, feature=%q} %s since %s: %s", a.Labels["alertname"], a.Labels["model"], a.Labels["feature"], a.Status.State, a.StartsAt.Format(time.TimeOnly), a.Annotations["summary"]), nil
			}
		}
		return false, fmt.Sprintf("active alerts of %s: %v", cfg.Model, names), nil
	}); err != nil {
		return err
	}

	// 6. A retrain trigger.
	if _, err := tl.Wait(ctx, "a retrain trigger", step, func(ctx context.Context) (bool, string, error) {
		ts, err := c.triggers(ctx, cfg.Model)
		if err != nil {
			return false, err.Error(), nil
		}
		for _, t := range ts {
			if t.CreatedAt.After(changedAt) {
				return true, fmt.Sprintf("trigger %s (%s, policy %s)", t.TriggerID, t.Reason, t.Policy), nil
			}
		}
		return false, fmt.Sprintf("%d earlier triggers", len(ts)), nil
	}); err != nil {
		return err
	}

	// 7. The trainer retrains and promotes.
	var newChampion string
	if _, err := tl.Wait(ctx, "the trainer promotes a new champion", step, func(ctx context.Context) (bool, string, error) {
		v, err := c.champion(ctx, cfg.Model)
		if err != nil {
			return false, err.Error(), nil
		}
		if v != "" && v != oldChampion {
			newChampion = v
			return true, fmt.Sprintf("champion %s (was %s)", v, oldChampion), nil
		}
		return false, "champion still " + oldChampion, nil
	}); err != nil {
		return err
	}

	// 8. serve reloads.
	var reloadedAt time.Time
	if _, err := tl.Wait(ctx, "serve answers with the new champion", step, func(ctx context.Context) (bool, string, error) {
		if v := st.lastVersion(); v == newChampion {
			reloadedAt = tl.Now()
			return true, fmt.Sprintf("predictions' model_version %s", v), nil
		}
		return false, "predictions' model_version " + st.lastVersion(), nil
	}); err != nil {
		return err
	}

	// 9. The live performance recovers.
	var worst *float64
	if _, err := tl.Wait(ctx, "live performance recovers", step, func(ctx context.Context) (bool, string, error) {
		ps, err := c.performance(ctx, cfg.Model, cfg.Metric)
		if err != nil {
			return false, err.Error(), nil
		}
		seen := "no window yet"
		for _, p := range ps {
			if p.WindowEnd.After(changedAt) && p.WindowStart.Before(reloadedAt) && (worst == nil || p.Value < *worst) {
				v := p.Value
				worst = &v
			}
		}
		if len(ps) > 0 { // newest first: only the newest window counts
			p := ps[0]
			seen = fmt.Sprintf("%s %.3f on the window %s–%s", p.Metric, p.Value, p.WindowStart.Format(time.TimeOnly), p.WindowEnd.Format(time.TimeOnly))
			if !p.WindowStart.Before(reloadedAt) && p.Value >= cfg.Recovered {
				dip := "no window between the change and the reload"
				if worst != nil {
					dip = fmt.Sprintf("%.3f after the change", *worst)
				}
				return true, fmt.Sprintf("%s %.3f on the window %s–%s (%d samples; %s)", p.Metric, p.Value, p.WindowStart.Format(time.TimeOnly), p.WindowEnd.Format(time.TimeOnly), p.Samples, dip), nil
			}
		}
		return false, seen, nil
	}); err != nil {
		return err
	}
	stop()
	fmt.Fprintf(tl.W, "%s the loop closed: %d rows predicted, %d labels, %d failed requests\n", stamp(tl.Elapsed()), st.predicted.Load(), st.labelled.Load(), st.failed.Load())
	return nil
}
