// Package report is `driftwatch report`: one model's console page for one
// window written to a self-contained HTML file (inline SVG and CSS, no
// scripts, nothing to load), what an analyst attaches to a ticket or a
// post-mortem. It renders with the console's own renderer (monitor/console)
// against a monitor's API over HTTP.
package report

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/monitor/console"
	"github.com/driftwatch/driftwatch/services/driftwatch/command"
)

// Commands returns the report command.
func Commands() []command.Command {
	return []command.Command{{
		Name:    "report",
		Summary: "write a model's console page for one window to a self-contained HTML file",
		Usage: `driftwatch report -model M [-at TIME] -o report.html [-monitor URL] writes model M's
console page (drift heatmap, the most drifted feature's distributions and
score history, data quality, performance, correlations) for the window
ending at or before TIME (RFC 3339; the latest without -at) to one HTML
file with inline SVG and CSS and no scripts. It reads the monitor's API
at -monitor (http://127.0.0.1:9102); a monitor with api_tokens_file wants a
read token (-api-token-file FILE or DRIFTWATCH_API_TOKEN).`,
		Config: func() config.Validator {
			return &Config{Monitor: "http://127.0.0.1:9102", Out: "report.html", Logging: config.DefaultLogging()}
		},
		Run: func(ctx context.Context, c config.Validator, env command.Env) error {
			cfg := c.(*Config)
			n, err := Write(ctx, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "wrote %s (%d bytes): model %s\n", cfg.Out, n, cfg.Model)
			return nil
		},
	}}
}

// Config is the report command's configuration.
type Config struct {
	config.Logging   `yaml:",inline"`
	config.APIClient `yaml:",inline"`
	Monitor          string `yaml:"monitor_url" env:"DRIFTWATCH_MONITOR_URL" flag:"monitor" help:"the monitor's base URL"`
	Model            string `yaml:"model" flag:"model" help:"model to report on (required)"`
	At               string `yaml:"at" flag:"at" help:"RFC 3339 time: the window ending at or before it (default the latest)"`
	Out              string `yaml:"out" flag:"o" help:"file to write"`
}

// Validate reports every invalid setting.
func (c *Config) Validate() error {
	var errs []error
	if c.Model == "" {
		errs = append(errs, errors.New("model: required (-model M)"))
	}
	if c.Out == "" {
		errs = append(errs, errors.New("o: the output file is required"))
	}
	if c.At != "" {
		if _, err := time.Parse(time.RFC3339, c.At); err != nil {
			errs = append(errs, fmt.Errorf("at: %q is not an RFC 3339 time such as 2026-01-02T15:04:00Z", c.At))
		}
	}
	return errors.Join(append(errs, c.Logging.Validate(), c.APIClient.Validate())...)
}

// Write renders the report and writes it to cfg.Out, returning its size.
func Write(ctx context.Context, cfg *Config) (int, error) {
	tok, err := cfg.APIClient.Token()
	if err != nil {
		return 0, err
	}
	api, err := console.RemoteAPI(cfg.Monitor, tok, &http.Client{Timeout: time.Minute})
	if err != nil {
		return 0, err
	}
	c, err := console.New(console.Options{API: api})
	if err != nil {
		return 0, err
	}
	var at time.Time
	if cfg.At != "" {
		at, _ = time.Parse(time.RFC3339, cfg.At)
	}
	var buf bytes.Buffer
	if err := c.Report(ctx, &buf, cfg.Model, at); err != nil {
		return 0, fmt.Errorf("report on model %s from %s: %w", cfg.Model, cfg.Monitor, err)
	}
	if err := os.WriteFile(cfg.Out, buf.Bytes(), 0o644); err != nil {
		return 0, fmt.Errorf("write the report: %w", err)
	}
	return buf.Len(), nil
}
