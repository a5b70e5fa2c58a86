package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Common holds the settings every driftwatch service shares; services embed
// it with `yaml:",inline"`. The environment names are the contract in
// DESIGN.md.
type Common struct {
	KafkaBrokers       []string      `yaml:"kafka_brokers" env:"DRIFTWATCH_KAFKA_BROKERS" flag:"kafka-brokers" help:"Kafka bootstrap brokers, comma-separated host:port"`
	ClickHouseURL      string        `yaml:"clickhouse_url" env:"DRIFTWATCH_CLICKHOUSE_URL" flag:"clickhouse-url" help:"ClickHouse URL: clickhouse://host:9000/db (native) or http://host:8123/db"`
	ClickHouseUser     string        `yaml:"clickhouse_user" env:"DRIFTWATCH_CLICKHOUSE_USER" flag:"clickhouse-user" help:"ClickHouse user (overrides the URL's)"`
	ClickHousePassword Secret        `yaml:"clickhouse_password" env:"DRIFTWATCH_CLICKHOUSE_PASSWORD" flag:"clickhouse-password" help:"ClickHouse password (overrides the URL's; prefer the environment, flags show in ps)"`
	HTTPAddr           string        `yaml:"http_addr" env:"DRIFTWATCH_HTTP_ADDR" flag:"http-addr" help:"listen address for /healthz, /readyz, /metrics and the API"`
	TopicPrefix        string        `yaml:"topic_prefix" env:"DRIFTWATCH_TOPIC_PREFIX" flag:"topic-prefix" help:"prefix of every Kafka topic name"`
	LogLevel           string        `yaml:"log_level" env:"DRIFTWATCH_LOG_LEVEL" flag:"log-level" help:"log level: debug, info, warn or error"`
	LogFormat          string        `yaml:"log_format" env:"DRIFTWATCH_LOG_FORMAT" flag:"log-format" help:"log format: text or json"`
	ShutdownTimeout    time.Duration `yaml:"shutdown_timeout" env:"DRIFTWATCH_SHUTDOWN_TIMEOUT" flag:"shutdown-timeout" help:"how long a graceful shutdown (flush, commit, close) may take"`
}

// DefaultCommon returns the local-development defaults from DESIGN.md with
// the service's own HTTP address.
func DefaultCommon(httpAddr string) Common {
	return Common{
		KafkaBrokers:    []string{"127.0.0.1:9092"},
		ClickHouseURL:   "http://127.0.0.1:8123/driftwatch",
		HTTPAddr:        httpAddr,
		TopicPrefix:     "driftwatch.",
		LogLevel:        "info",
		LogFormat:       "text",
		ShutdownTimeout: 30 * time.Second,
	}
}

// Validate reports every invalid shared setting, each naming its YAML key.
func (c *Common) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	if len(c.KafkaBrokers) == 0 {
		bad("kafka_brokers", "at least one broker is required")
	}
	for _, b := range c.KafkaBrokers {
		if err := checkHostPort(b); err != nil {
			bad("kafka_brokers", "%q: %v", b, err)
		}
	}
	if err := CheckClickHouseURL(c.ClickHouseURL); err != nil {
		bad("clickhouse_url", "%v", err)
	}
	if err := checkHostPort(c.HTTPAddr); err != nil {
		bad("http_addr", "%q: %v", c.HTTPAddr, err)
	}
	if strings.ContainsAny(c.TopicPrefix, " /\\,") || len(c.TopicPrefix) > 200 {
		bad("topic_prefix", "%q may hold only letters, digits, '.', '_' and '-'", c.TopicPrefix)
	} else {
		for _, r := range c.TopicPrefix {
			if !(r == '.' || r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				bad("topic_prefix", "%q may hold only letters, digits, '.', '_' and '-'", c.TopicPrefix)
				break
			}
		}
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("log_level", "%v", err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log_format", "%q is neither text nor json", c.LogFormat)
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown_timeout", "must be positive, got %s", c.ShutdownTimeout)
	}
	return errors.Join(errs...)
}

// Logger builds the service's logger from LogLevel and LogFormat.
func (c *Common) Logger(service string) *slog.Logger {
	lvl, _ := parseLevel(c.LogLevel)
	hopts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, hopts)
	if c.LogFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, hopts)
	}
	return slog.New(h).With("service", service)
}

// CheckClickHouseURL checks the shape of a ClickHouse URL without
// connecting; the error never contains the password.
func CheckClickHouseURL(raw string) error {
	if raw == "" {
		return errors.New("required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error quotes the input, which may hold a password.
		return errors.New("not a URL (expected clickhouse://host:9000/db or http://host:8123/db)")
	}
	switch u.Scheme {
	case "clickhouse", "tcp", "http", "https":
	default:
		return fmt.Errorf("scheme %q is not one of clickhouse, tcp, http, https", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("host is missing (expected clickhouse://host:9000/db or http://host:8123/db)")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not a number from 1 to 65535", p)
		}
	}
	if db := strings.Trim(u.Path, "/"); strings.Contains(db, "/") {
		return fmt.Errorf("path %q must be a single database name", u.Path)
	}
	return nil
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("not host:port")
	}
	_ = host // an empty host means every interface, which is allowed
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q is not one of debug, info, warn, error", s)
	}
	return l, nil
}
