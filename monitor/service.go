package monitor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/driftwatch/driftwatch/internal/config"
	"github.com/driftwatch/driftwatch/internal/kafkaio"
	"github.com/driftwatch/driftwatch/internal/migration"
	"github.com/driftwatch/driftwatch/internal/service"
	"github.com/driftwatch/driftwatch/internal/signing"
	"github.com/driftwatch/driftwatch/monitor/console"
	"github.com/driftwatch/driftwatch/schemas"
)

// Config is the monitor service's configuration: the common keys, the
// migration's and the monitor's Settings.
type Config struct {
	config.Common    `yaml:",inline"`
	migration.Config `yaml:",inline"`
	Settings         `yaml:",inline"`
	// TriggerSigning signs every published trigger when its key file is
	// set.
	config.TriggerSigning `yaml:",inline"`
	// ConsoleURL is where people reach this monitor's console; alerts
	// link to it through driftwatch_console_info (see ConsoleBase).
	ConsoleURL string `yaml:"console_url" env:"DRIFTWATCH_MONITOR_CONSOLE_URL" flag:"console-url" help:"base URL of this monitor's web console as people reach it, linked from the alerts (default: http://HTTP_ADDR, a wildcard host as 127.0.0.1)"`
}

// Resolved returns the configuration in effect (config.Resolver):
// evaluation_timeout 0 as half of step, each model's 0 and missing policy
// as the instance's,
// clickhouse_user as the clients will use it. The monitor takes its other
// settings as given (0 means what it says).
func (c *Config) Resolved() any {
	r := *c
	r.Common = c.ResolvedCommon()
	r.ConsoleURL = c.ConsoleBase()
	if r.EvaluationTimeout == 0 {
		r.EvaluationTimeout = r.Step / 2
	}
	if c.Models != nil {
		r.Models = make(map[string]ModelConfig, len(c.Models))
		for id, mc := range c.Models {
			if mc.EvaluationTimeout == 0 {
				mc.EvaluationTimeout = r.EvaluationTimeout
			}
			if mc.Policy == nil {
				p := r.Policy
				mc.Policy = &p
			}
			r.Models[id] = mc
		}
	}
	return &r
}

// DefaultConfig returns the monitor defaults (HTTP on 127.0.0.1:9102).
func DefaultConfig() *Config {
	return &Config{Common: config.DefaultCommon("127.0.0.1:9102"), Config: migration.DefaultConfig(), Settings: DefaultSettings()}
}

// Validate reports every invalid setting.
func (c *Config) Validate() error {
	errs := []error{c.Common.Validate(), c.Config.Validate(), c.Settings.Validate(), c.TriggerSigning.Validate(), validateConsoleURL(c.ConsoleURL)}
	if c.HTTPWriteTimeout <= c.APIQueryTimeout {
		errs = append(errs, fmt.Errorf("http_write_timeout: %s must be longer than api_query_timeout %s, or an answer is cut off while its query still runs", c.HTTPWriteTimeout, c.APIQueryTimeout))
	}
	return errors.Join(errs...)
}

// RunService runs the monitor until ctx ends.
func RunService(ctx context.Context, cfg *Config) error {
	return service.Run(ctx, service.Spec{
		Name: "monitor", Common: cfg.Common, Migration: cfg.Config, Secrets: config.SecretValues(cfg),
		Topics: []schemas.Topic{schemas.TopicFor(schemas.TopicRetrainTriggers)},
		Setup: func(ctx context.Context, rt *service.Runtime) (func(context.Context) error, error) {
			key, err := cfg.TriggerSigning.Key()
			if err != nil {
				return nil, fmt.Errorf("trigger_signing_key_file: %w", err)
			}
			tw, err := kafkaio.NewWriter(rt.Kafka, schemas.TopicRetrainTriggers)
			if err != nil {
				return nil, err
			}
			rt.OnClose(tw.Close)
			m, err := New(Options{Settings: cfg.Settings, Conn: rt.Conn, TriggerWriter: tw, TriggerSigner: signing.New(key), Registerer: rt.Server.Registry(), Logger: rt.Log})
			if err != nil {
				return nil, err
			}
			if err := m.Mount(rt.Server); err != nil {
				return nil, err
			}
			registerConsoleInfo(rt.Server.Registry(), cfg.ConsoleBase())
			rt.Log.Info("monitoring", "window", cfg.Window, "step", cfg.Step, "reference", cfg.ReferenceMode+"/"+cfg.Reference.String())
			return m.Run, nil
		},
	})
}

// Mount serves the API under /api/ and the web console under /ui/ on s,
// both behind s's API protection, the labeling queue as a write. The console reads the same API
// in-process (docs/console.md).
func (m *Monitor) Mount(s *service.Server) error {
	api := m.API()
	s.Handle("/api/", api)
	// The labeling queue records the rows it hands out: a write.
	s.HandleWrite("GET "+labelingQueuePath, api)
	ui, err := console.New(console.Options{API: api})
	if err != nil {
		return err
	}
	s.Handle("/ui/", ui)
	return nil
}

// ConsoleBase returns the console's base URL without a trailing slash:
// console_url, or else http:// and http_addr, a wildcard or empty host
// (0.0.0.0, [::]) replaced by 127.0.0.1. Behind a proxy, a load balancer
// or a wildcard address reached by another name, set console_url.
func (c *Config) ConsoleBase() string {
	if c.ConsoleURL != "" {
		return strings.TrimRight(c.ConsoleURL, "/")
	}
	host, port, err := net.SplitHostPort(c.HTTPAddr)
	if err != nil {
		return "http://" + c.HTTPAddr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// validateConsoleURL accepts "" (derived from http_addr) or an absolute
// http or https URL without a query or fragment: the alerts append
// /ui/models/… to it.
func validateConsoleURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("console_url: not a URL") // url's error would quote it, password and all
	}
	if u.User != nil {
		return errors.New("console_url: holds a user or password; it is shown in every alert")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("console_url: %q is not an http or https URL with a host and without a query or fragment", s)
	}
	return nil
}

// registerConsoleInfo exports driftwatch_console_info{url} 1: alert rules
// cannot read the monitor's configuration, so their annotations look the
// console's address up in this series (deploy/prometheus/rules).
func registerConsoleInfo(reg prometheus.Registerer, base string) {
	promauto.With(reg).NewGaugeVec(prometheus.GaugeOpts{Name: "driftwatch_console_info",
		Help: "Always 1; url is the base URL of this monitor's web console (console_url), which alerts link to."}, []string{"url"}).WithLabelValues(base).Set(1)
}
