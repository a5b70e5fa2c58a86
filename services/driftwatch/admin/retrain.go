package admin

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/driftwatch/driftwatch/internal/chclient"
	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/monitor"
	"github.com/driftwatch/driftwatch/retrain"
	"github.com/driftwatch/driftwatch/schemas"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

// retrainConfig is driftwatch retrain's: the monitor it asks, and how it
// authenticates. The command never writes to Kafka itself, so a manual
// trigger passes the monitor's gate like every other: recorded in
// retrain_triggers (GET /api/v1/triggers), counted against daily_max,
// signed with the monitor's key.
type retrainConfig struct {
	config.Logging   `yaml:",inline"`
	MonitorURL       string `yaml:"monitor_url" env:"DRIFTWATCH_MONITOR_URL" flag:"monitor-url" help:"the monitor's base URL: the trigger is posted to its API (POST /api/v1/models/M/triggers), which records it, applies its daily maximum and publishes it"`
	config.APIClient `yaml:",inline"`
	Model            string        `yaml:"model" flag:"model" help:"model to retrain (required)"`
	Reason           string        `yaml:"reason" flag:"reason" help:"free text recorded with the trigger (its evidence's note)"`
	Timeout          time.Duration `yaml:"timeout" flag:"timeout" help:"longest the monitor may take to answer"`
}

// defaultMonitorURL is the monitor's default HTTP address
// (monitor.DefaultConfig), as a URL.
const defaultMonitorURL = "http://127.0.0.1:9102"

func (c *retrainConfig) Validate() error {
	var errs []error
	if c.Model == "" {
		errs = append(errs, errors.New("model: required (-model M)"))
	}
	if u, err := url.Parse(c.MonitorURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("monitor_url: want http(s)://host:port of the monitor, got %q", c.MonitorURL))
	} else if u.User != nil {
		errs = append(errs, errors.New("monitor_url: must not hold a user or password (give the token with -api-token-file or DRIFTWATCH_API_TOKEN)"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout: must be positive, got %s", c.Timeout))
	}
	return errors.Join(append(errs, c.Logging.Validate(), c.APIClient.Validate())...)
}

type modelsConfig struct {
	config.ClickHouse `yaml:",inline"`
	config.Logging    `yaml:",inline"`
	Model             string `yaml:"model" flag:"model" help:"list only this model's versions"`
	JSON              bool   `yaml:"json" flag:"json" help:"print JSON instead of a table"`
}

func (c *modelsConfig) Validate() error {
	return errors.Join(c.ClickHouse.Validate(), c.Logging.Validate())
}

func retrainCommand() command.Command {
	return command.Command{
		Name:    "retrain",
		Summary: "ask the monitor for a manual retrain trigger for a model (the trainer service runs it)",
		Usage: `driftwatch retrain -model M asks the monitor (-monitor-url, default
` + defaultMonitorURL + `) for a manual retrain trigger for model M: POST
/api/v1/models/M/triggers. The monitor's gate decides as for its own
triggers: it records the trigger in retrain_triggers (GET /api/v1/triggers
lists it), refuses it when the model already had daily_max triggers today,
signs it with its trigger_signing_key_file and publishes it to
<prefix>retrain-triggers. The trainer runs it ahead of other triggers
(manual has the highest priority); follow it with driftwatch models -model M.

The monitor's API wants a write token of its api_tokens_file
(-api-token-file FILE or DRIFTWATCH_API_TOKEN). Exit status 1 when the
monitor is unreachable, refuses the token, or refuses the trigger (the
reason is printed); nothing is published then.`,
		Config: func() config.Validator {
			return &retrainConfig{Logging: config.DefaultLogging(), MonitorURL: defaultMonitorURL, Timeout: time.Minute}
		},
		Run: func(ctx context.Context, c config.Validator, env command.Env) error {
			return postTrigger(ctx, c.(*retrainConfig), env)
		},
	}
}

func modelsCommand() command.Command {
	return command.Command{
		Name:    "models",
		Summary: "list registered model versions and their status",
		Usage:   `driftwatch models lists the models table: every version, its status (champion, rejected, retired, …), primary metrics and the trigger that produced it.`,
		Config: func() config.Validator {
			return &modelsConfig{ClickHouse: config.DefaultClickHouse(), Logging: config.DefaultLogging()}
		},
		Run: func(ctx context.Context, c config.Validator, env command.Env) error {
			cfg := c.(*modelsConfig)
			conn, err := chclient.Open(ctx, chclient.FromConfig(cfg.ClickHouse), false)
			if err != nil {
				return err
			}
			defer conn.Close()
			vs, err := retrain.ListVersions(ctx, conn, cfg.Model)
			if err != nil {
				return err
			}
			if cfg.JSON {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(vs)
			}
			printVersions(env, vs)
			return nil
		},
	}
}

func printVersions(env command.Env, vs []*retrain.Version) {
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tVERSION\tSTATUS\tMETRICS (challenger / champion)\tTRAINER\tTRIGGER\tCREATED")
	for _, v := range vs {
		keys := make([]string, 0, len(v.Metrics))
		for k := range v.Metrics {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var m []string
		for _, k := range keys {
			m = append(m, fmt.Sprintf("%s=%.4f/%.4f", k, v.Metrics[k], v.ChampionMetrics[k]))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.ModelID, v.Version, v.Status, strings.Join(m, " "), v.Trainer, v.TriggerID, v.CreatedAt.Format(time.RFC3339))
	}
	tw.Flush()
}

// postTrigger asks the monitor's API for a manual trigger.
func postTrigger(ctx context.Context, cfg *retrainConfig, env command.Env) error {
	tok, err := cfg.APIClient.Token()
	if err != nil {
		return err
	}
	body, err := json.Marshal(monitor.ManualRequest{Note: cfg.Reason})
	if err != nil {
		return err
	}
	base := strings.TrimRight(cfg.MonitorURL, "/")
	u := base + "/api/v1/models/" + url.PathEscape(cfg.Model) + "/triggers"
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("monitor_url: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("the monitor at %s is unreachable (is it running? -monitor-url names it): %w", base, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var out struct {
		Error   string                  `json:"error"`
		Outcome monitor.Outcome         `json:"outcome"`
		Trigger *schemas.RetrainTrigger `json:"trigger"`
	}
	_ = json.Unmarshal(raw, &out)
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		hint := "give a write token with -api-token-file FILE or DRIFTWATCH_API_TOKEN"
		if tok != "" {
			hint = "the token given is not a write token of the monitor's api_tokens_file"
		}
		return fmt.Errorf("the monitor refused the request (%s): %s; %s", resp.Status, out.Error, hint)
	case resp.StatusCode == http.StatusTooManyRequests && out.Outcome == monitor.OutcomeDailyMax:
		return fmt.Errorf("the monitor refused the manual trigger for %s: daily_max (the model already had the monitor's daily maximum of retrain triggers today, see GET /api/v1/triggers?model=%s); nothing was published",
			cfg.Model, url.QueryEscape(cfg.Model))
	case resp.StatusCode >= 300:
		return fmt.Errorf("the monitor answered %s: %s", resp.Status, strings.TrimSpace(cmp.Or(out.Error, string(raw))))
	case out.Trigger == nil:
		return fmt.Errorf("the monitor answered %s without a trigger: %.200s", resp.Status, raw)
	}
	fmt.Fprintf(env.Stdout, "manual retrain trigger %s for %s: %s by the monitor\n", out.Trigger.TriggerID, out.Trigger.ModelID, out.Outcome)
	return nil
}
